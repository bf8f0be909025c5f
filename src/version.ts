/** realign's version, recorded in model cards, safetensors metadata and reports. Keep in sync with package.json. */
export const VERSION = "0.1.0";
/** Tool name recorded in provenance metadata. */
export const TOOL_NAME = "realign";
