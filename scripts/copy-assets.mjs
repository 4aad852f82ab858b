// Copies the browser builds of the portal's front-end libraries from node_modules into
// portal/static/vendor, so the portal serves them itself and works offline.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const vendor = join(root, "portal", "static", "vendor");
mkdirSync(vendor, { recursive: true });

const files = {
  "chart.umd.min.js": "node_modules/chart.js/dist/chart.umd.min.js",
  "socket.io.min.js": "node_modules/socket.io-client/dist/socket.io.min.js",
};
for (const [target, source] of Object.entries(files)) {
  copyFileSync(join(root, source), join(vendor, target));
  console.log(`vendor: ${source} -> portal/static/vendor/${target}`);
}
