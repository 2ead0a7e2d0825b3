import { startChatApp } from "./app.js";

const port = Number(process.env.PORT ?? 5000);
const host = process.env.HOST ?? "127.0.0.1";
const app = await startChatApp(port, host);
console.log(`Switchboard chat demo: http://${host === "0.0.0.0" ? "localhost" : host}:${app.port}/  (hub: /hubs/chat)`);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    console.log("Stopping: telling every client, then closing.");
    void app.close().then(() => process.exit(0));
  });
}
