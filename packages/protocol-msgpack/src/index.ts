export { MessagePackHubProtocol, type MessagePackHubProtocolOptions } from "./msgpack-hub-protocol.js";
export {
  frame,
  MAX_FRAME_BODY_LENGTH,
  MAX_PREFIX_LENGTH,
  VarIntFrameReader,
  varIntSize,
  writeVarInt,
} from "./varint-framing.js";
