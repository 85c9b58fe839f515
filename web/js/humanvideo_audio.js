// Give HumanVideo's audio loader the same player + upload button as core's Load Audio.
//
// The frontend adds its audio upload button to any node whose "audio" combo has audio_upload, but
// only core audio nodes get the "audioUI" player that button expects; without it the node fails to
// build. The player must come before the button, so "upload" is moved behind it.
import { app } from "../../../scripts/app.js";  // served at /extensions/<pack>/js/

const AUDIO_LOADERS = ["HVLoadAudio"];

app.registerExtension({
  name: "HumanVideo.AudioLoaderPreview",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!AUDIO_LOADERS.includes(nodeData?.name)) return;
    const required = nodeData.input?.required;
    if (!required || required.audioUI) return;
    const upload = required.upload;
    delete required.upload;
    required.audioUI = ["AUDIO_UI", {}];
    if (upload) required.upload = upload;
  },
});
