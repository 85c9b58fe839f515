// Outputs removed from HumanVideo nodes (see nodes/removed_outputs.py): a workflow saved before the removal
// still carries the output and its links, which the page would keep and queue as a link to a missing slot.
// On opening such a workflow the stale output is dropped with its links and, when something was linked to
// it, a message says why and what to use instead.
import { app } from "../../../scripts/app.js";  // served at /extensions/<pack>/js/

const REMOVED_OUTPUTS = {
  HVHuMoSampler: {
    predicted_mask:
      "HuMo Sampler no longer has the predicted_mask output: no released HuMo checkpoint carries " +
      "mask-predictor heads. Its links were removed; for a face focus found during sampling, switch on " +
      "the sampler's focus_by_prediction.",
  },
};

function notify(detail) {
  const toast = app.extensionManager?.toast;
  if (toast?.add) toast.add({ severity: "warn", summary: "HumanVideo", detail, life: 20000 });
  console.warn(`HumanVideo: ${detail}`);
}

app.registerExtension({
  name: "HumanVideo.RemovedOutputs",
  loadedGraphNode(node) {
    const removed = REMOVED_OUTPUTS[node.comfyClass ?? node.type];
    if (!removed || !node.outputs) return;
    for (let slot = node.outputs.length - 1; slot >= 0; slot--) {
      const output = node.outputs[slot];
      if (!output || !(output.name in removed)) continue;
      const links = (output.links || []).length;
      node.removeOutput(slot);  // disconnects its links too
      if (links) notify(`${removed[output.name]} (node ${node.id}: ${links} link(s) removed)`);
    }
  },
});
