export { WebSocketTransport, type WebSocketTransportOptions } from "./websocket-transport.js";
export { WebSocketConnection } from "./websocket-connection.js";
