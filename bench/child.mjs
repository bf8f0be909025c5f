// Runs `realign <args…>` exactly as bin/realign.mjs does, and on exit writes this process's wall time and
// peak resident set size (process.resourceUsage().maxRSS, KiB, worker threads included) to <stats.json>.
// Usage: node bench/child.mjs <stats.json> <realign args…>   (REALIGN_BIN=<path> runs another checkout's bin/realign.mjs)
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const [, , statsFile, ...args] = process.argv;
const bin = process.env.REALIGN_BIN ?? fileURLToPath(new URL("../bin/realign.mjs", import.meta.url));
process.argv = [process.argv[0], bin, ...args];
process.on("exit", (code) => {
  const u = process.resourceUsage();
  writeFileSync(statsFile, JSON.stringify({ code, maxRssKiB: u.maxRSS, userUs: u.userCPUTime, systemUs: u.systemCPUTime }));
});
await import(bin);
