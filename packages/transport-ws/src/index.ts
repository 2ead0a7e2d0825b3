export { HttpTransport, type HttpTransportOptions } from "./http-transport.js";
export { WebSocketTransport, type WebSocketTransportOptions } from "./websocket-transport.js";
export { WebSocketConnection } from "./websocket-connection.js";
export { ServerSentEventsConnection, sseEvent } from "./server-sent-events-connection.js";
export { LongPollingConnection, type LongPollingTimes } from "./long-polling-connection.js";
export { HttpConnection, type HttpConnectionHost } from "./http-connection.js";
export { OriginPolicy, type CorsOptions, type OriginList } from "./origin-policy.js";
