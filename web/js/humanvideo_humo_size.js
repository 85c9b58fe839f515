// HuMo Conditioning: a preset size decides the video's width and height, so the width/height widgets show
// the preset's numbers and cannot be edited while a preset is chosen; "custom" makes them editable again.
// What the node shows is what runs (the server uses the preset whenever size is not "custom").
//
// Preset names are "<height>x<width>" (the size input's tooltip says so); this is the only place the page
// reads them, and the browser tests compare it with the server's presets.
import { app } from "../../../scripts/app.js";  // served at /extensions/<pack>/js/

const NODE = "HVHuMoConditioning";
const PRESET = /^(\d+)x(\d+)$/;

function presetDimensions(value) {
  const m = PRESET.exec(String(value));
  return m ? { height: Number(m[1]), width: Number(m[2]) } : null;
}

function followPreset(node) {
  const widget = (name) => node.widgets?.find((w) => w.name === name);
  const size = widget("size");
  const width = widget("width");
  const height = widget("height");
  if (!size || !width || !height) return;
  const preset = presetDimensions(size.value);
  if (preset) {
    width.value = preset.width;
    height.value = preset.height;
  }
  for (const w of [width, height]) w.disabled = !!preset;
  node.setDirtyCanvas?.(true, true);
}

app.registerExtension({
  name: "HumanVideo.HuMoPresetSize",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE) return;
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function (...args) {
      const result = created?.apply(this, args);
      const size = this.widgets?.find((w) => w.name === "size");
      if (size) {
        const picked = size.callback;
        const node = this;
        size.callback = function (...cbArgs) {
          const r = picked?.apply(this, cbArgs);
          followPreset(node);
          return r;
        };
      }
      followPreset(this);
      return result;
    };
    // A loaded workflow sets the widget values after creation.
    const configured = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function (...args) {
      const result = configured?.apply(this, args);
      followPreset(this);
      return result;
    };
  },
});
