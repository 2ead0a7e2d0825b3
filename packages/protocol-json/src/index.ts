export { JsonHubProtocol } from "./json-hub-protocol.js";
export { RECORD_SEPARATOR, RECORD_SEPARATOR_CHAR, TextRecordSplitter } from "./text-framing.js";
