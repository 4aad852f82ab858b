// The Chi War web client's socket, as it opens it (shot-client-next
// src/lib/client/unifiedChannelClient.ts, PhoenixChannelClient): the `phoenix` npm client with
// `params: () => ({token})` on `<server>/socket`, one channel per topic joined with `{id}`,
// listening to `message` (and the other events the web client handles).
//
//   node tests/support/phoenix_client.mjs ws://127.0.0.1:PORT TOKEN TOPIC [TOPIC ...]
//
// Prints one JSON line per thing that happens: {"type": "open"}, {"type": "join", topic,
// status, response}, {"type": "push", topic, event, payload}, {"type": "error"} / {"type":
// "close", code}. Runs until killed or until stdin closes; the Python test reads the lines.
import { Socket } from "phoenix";
import WebSocket from "ws";

const [base, token, ...topics] = process.argv.slice(2);
const say = (event) => process.stdout.write(JSON.stringify(event) + "\n");
// Node 20 has no global WebSocket; in the browser the phoenix client uses the built-in one.
const socket = new Socket(`${base}/socket`, { params: () => ({ token }), transport: WebSocket });
socket.onOpen(() => say({ type: "open" }));
socket.onError(() => say({ type: "error" }));
socket.onClose((event) => say({ type: "close", code: event && event.code }));
socket.connect();

const EVENTS = ["message", "update", "broadcast", "change", "reload"];
for (const topic of topics) {
  const id = topic.split(":")[1];
  const channel = socket.channel(topic, { id, client_id: `${id}--campaigns` });
  for (const event of EVENTS) {
    channel.on(event, (payload) => say({ type: "push", topic, event, payload }));
  }
  channel
    .join()
    .receive("ok", (response) => say({ type: "join", topic, status: "ok", response }))
    .receive("error", (response) => say({ type: "join", topic, status: "error", response }))
    .receive("timeout", () => say({ type: "join", topic, status: "timeout" }));
}

process.stdin.on("end", () => {
  socket.disconnect(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000);
});
process.stdin.resume();
