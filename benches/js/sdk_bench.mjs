// Times the official OpenCode JavaScript SDK (`@opencode-ai/sdk`) and plain `fetch` against a running
// OpenCode server, doing what `benches/benches/opencode_client.rs` does with the Rust client and plain
// reqwest:
//
// - session_crud: create a session, get it, delete it (three requests);
// - event_round_trip: post a toast to /tui/show-toast and wait until its `tui.toast.show` event arrives on an
//   /event stream opened beforehand.
//
// Usage: node sdk_bench.mjs --url http://127.0.0.1:PORT [--password PW] [--iterations N] [--warmup N]
//                           [--block N]
//
// The two contenders take turns in blocks of `--block` iterations (the first of each pair of blocks
// alternates), so that a server or machine that slows down for a while slows both. Each block of the event
// workload opens its own stream before its clock starts and closes it after, so the server always has
// exactly one subscriber to publish to, as in the Rust runs. Every iteration is timed alone; the process's
// CPU time (user + system, all threads) is summed over the timed loops.
//
// Prints one JSON object on stdout: per workload and contender, the median, p90, mean and minimum of the
// iterations' wall time and the mean CPU time per iteration, then every block in the order it ran (block i
// of one contender ran next to block i of the other) with each iteration's wall time and the block's CPU
// time; all in microseconds.

import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { createOpencodeClient } from "@opencode-ai/sdk";

function parseArgs(argv) {
  const options = { url: "", password: "", iterations: 200, warmup: 20, block: 25 };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${name} needs a value`);
    switch (name) {
      case "--url":
        options.url = value.replace(/\/+$/, "");
        break;
      case "--password":
        options.password = value;
        break;
      case "--iterations":
        options.iterations = Number.parseInt(value, 10);
        break;
      case "--warmup":
        options.warmup = Number.parseInt(value, 10);
        break;
      case "--block":
        options.block = Number.parseInt(value, 10);
        break;
      default:
        throw new Error(`unknown option ${name}`);
    }
  }
  if (!options.url) throw new Error("--url is required");
  if (!(options.iterations >= 1) || !(options.warmup >= 0) || !(options.block >= 1)) {
    throw new Error("--iterations and --block must be at least 1, --warmup at least 0");
  }
  return options;
}

function summary(blocks) {
  const samplesMs = blocks.flatMap((block) => block.samplesMs);
  const cpuUs = blocks.reduce((sum, block) => sum + block.cpuUs, 0);
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const round = (us) => Math.round(us * 10) / 10;
  const mean = sorted.reduce((sum, x) => sum + x, 0) / sorted.length;
  return {
    iterations: sorted.length,
    median_us: round(at(0.5) * 1000),
    p90_us: round(at(0.9) * 1000),
    mean_us: round(mean * 1000),
    min_us: round(sorted[0] * 1000),
    cpu_us: round(cpuUs / sorted.length),
    blocks: blocks.map((block) => ({
      samples_us: block.samplesMs.map((ms) => round(ms * 1000)),
      cpu_us: round(block.cpuUs),
    })),
  };
}

function cpuNow() {
  const { user, system } = process.cpuUsage();
  return user + system;
}

let counter = 0;
// A toast message no other iteration uses.
function uniqueMessage(name) {
  counter += 1;
  return `${name}-${process.pid}-${counter}`;
}

// --- The SDK -------------------------------------------------------------------------------------------

function sdkContender(options, authorization) {
  const headers = authorization ? { Authorization: authorization } : {};
  const client = createOpencodeClient({ baseUrl: options.url, headers });
  let abort;
  let events;
  const nextEvent = async (wanted) => {
    for (;;) {
      const { value, done } = await events.next();
      if (done) throw new Error("the SDK's event stream ended");
      if (wanted(value)) return value;
    }
  };
  return {
    name: "sdk",
    async sessionCrud() {
      const created = await client.session.create({ body: {}, throwOnError: true });
      const id = created.data.id;
      await client.session.get({ path: { id }, throwOnError: true });
      await client.session.delete({ path: { id }, throwOnError: true });
    },
    async openEvents() {
      abort = new AbortController();
      const { stream } = await client.event.subscribe({ signal: abort.signal, sseMaxRetryAttempts: 1 });
      events = stream[Symbol.asyncIterator]();
      // The generator connects on the first read; the server's first event says the stream is up.
      await nextEvent((event) => event?.type === "server.connected");
    },
    async eventRoundTrip() {
      const message = uniqueMessage("sdk");
      await client.tui.showToast({ body: { message, variant: "info" }, throwOnError: true });
      await nextEvent((event) => event?.type === "tui.toast.show" && event.properties?.message === message);
    },
    async closeEvents() {
      abort.abort();
      await events.return?.();
    },
  };
}

// --- Plain fetch: the same requests, no client library, no decoding beyond finding the session id ------

function fetchContender(options, authorization) {
  const base = options.url;
  const auth = authorization ? { authorization } : {};
  const jsonHeaders = { ...auth, "content-type": "application/json" };
  const ok = async (response, what) => {
    if (!response.ok) throw new Error(`${what} answered ${response.status}: ${await response.text()}`);
    return response;
  };
  let abort;
  let reader;
  let buffer = "";
  const decoder = new TextDecoder();
  // Reads the event stream until `needle` has arrived, and drops everything up to its end.
  const until = async (needle) => {
    for (;;) {
      const at = buffer.indexOf(needle);
      if (at >= 0) {
        buffer = buffer.slice(at + needle.length);
        return;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error("the event stream ended");
      buffer += decoder.decode(value, { stream: true });
    }
  };
  return {
    name: "fetch",
    async sessionCrud() {
      const created = await ok(
        await fetch(`${base}/session`, { method: "POST", headers: jsonHeaders, body: "{}" }),
        "POST /session",
      );
      const text = await created.text();
      const found = /"id":"([^"]+)"/.exec(text);
      if (!found) throw new Error(`no session id in ${text.slice(0, 200)}`);
      const id = found[1];
      await (await ok(await fetch(`${base}/session/${id}`, { headers: auth }), "GET /session/{id}")).arrayBuffer();
      await (
        await ok(await fetch(`${base}/session/${id}`, { method: "DELETE", headers: auth }), "DELETE /session/{id}")
      ).arrayBuffer();
    },
    async openEvents() {
      abort = new AbortController();
      const response = await ok(
        await fetch(`${base}/event`, { headers: { ...auth, accept: "text/event-stream" }, signal: abort.signal }),
        "GET /event",
      );
      reader = response.body.getReader();
      buffer = "";
      await until('"server.connected"');
    },
    async eventRoundTrip() {
      const message = uniqueMessage("fetch");
      const response = await ok(
        await fetch(`${base}/tui/show-toast`, {
          method: "POST",
          headers: jsonHeaders,
          body: JSON.stringify({ message, variant: "info" }),
        }),
        "POST /tui/show-toast",
      );
      await response.arrayBuffer();
      // With its quotes, so that `…-1` does not match inside `…-10`.
      await until(`"${message}"`);
    },
    async closeEvents() {
      abort.abort();
      await reader.cancel().catch(() => {});
    },
  };
}

// Runs one workload for every contender: a warm-up each, then blocks in turn until each has `iterations`.
async function run(contenders, workload, options) {
  const streaming = workload === "event_round_trip";
  const op = streaming ? "eventRoundTrip" : "sessionCrud";
  for (const contender of contenders) {
    if (streaming) await contender.openEvents();
    for (let i = 0; i < options.warmup; i++) await contender[op]();
    if (streaming) await contender.closeEvents();
  }
  const blocks = new Map(contenders.map((contender) => [contender.name, []]));
  for (let done = 0, round = 0; done < options.iterations; done += options.block, round++) {
    const count = Math.min(options.block, options.iterations - done);
    const order = round % 2 === 0 ? contenders : [...contenders].reverse();
    for (const contender of order) {
      if (streaming) await contender.openEvents();
      const samplesMs = [];
      const cpuStart = cpuNow();
      for (let i = 0; i < count; i++) {
        const start = performance.now();
        await contender[op]();
        samplesMs.push(performance.now() - start);
      }
      const cpuUs = cpuNow() - cpuStart;
      blocks.get(contender.name).push({ samplesMs, cpuUs });
      if (streaming) await contender.closeEvents();
    }
  }
  return Object.fromEntries(contenders.map((contender) => [contender.name, summary(blocks.get(contender.name))]));
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const authorization = options.password
    ? `Basic ${Buffer.from(`opencode:${options.password}`).toString("base64")}`
    : "";
  const sdkPackage = JSON.parse(
    readFileSync(new URL("./node_modules/@opencode-ai/sdk/package.json", import.meta.url), "utf8"),
  );
  const contenders = [sdkContender(options, authorization), fetchContender(options, authorization)];
  const results = {
    session_crud: await run(contenders, "session_crud", options),
    event_round_trip: await run(contenders, "event_round_trip", options),
  };
  const report = `${JSON.stringify({ node: process.version, sdk_version: sdkPackage.version, results })}\n`;
  // Exit only once the report is flushed: a pipe takes writes asynchronously, and exiting earlier cuts it.
  await new Promise((resolve) => process.stdout.write(report, resolve));
}

main().then(
  // Idle keep-alive connections would hold the process for seconds otherwise.
  () => process.exit(0),
  (error) => {
    process.stderr.write(`sdk_bench: ${error?.stack ?? error}\n`);
    process.exit(1);
  },
);
