// Written by `orchestrator install`; `orchestrator uninstall` removes it.
//
// `/task <mission>` in this project's OpenCode runs the mission with the orchestrator, with nothing else to
// start: when OpenCode reports the `task` command executed, this starts `orchestrator task --session ...`
// for it, which posts "picked up as mission m..." in the session, shows the stages and tasks as toasts and
// posts the summary there. Its output goes to .opencode/orchestrator/plugin.log. No npm dependencies.
import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, writeFileSync } from "node:fs"
import { delimiter, join } from "node:path"

// The binary that ran `orchestrator install` (null: none recorded); else `orchestrator` on PATH.
const RECORDED = __RECORDED_BINARY__
const GITIGNORE = __STATE_GITIGNORE__

const runnable = (path) => {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

const findBinary = () =>
  [RECORDED, ...(process.env.PATH ?? "").split(delimiter).map((dir) => dir && join(dir, "orchestrator"))].find(
    (path) => path && runnable(path),
  )

export const OrchestratorTask = async ({ client, directory }) => {
  const state = join(directory, ".opencode", "orchestrator")
  const token = randomBytes(24).toString("hex")
  let proxy

  // OpenCode's TUI serves its API inside its process, on no port unless started with --port: the
  // orchestrator reaches it through this loopback proxy, which asks for the token and forwards through the
  // plugin's own client (with the server's own credentials, if it has any).
  const serverUrl = () => {
    if (!proxy) {
      const { baseUrl, fetch, headers } = client._client.getConfig()
      const credentials = new Headers(headers).get("authorization")
      const expected = "Basic " + Buffer.from("opencode:" + token).toString("base64")
      proxy = Bun.serve({
        hostname: "127.0.0.1",
        port: 0,
        idleTimeout: 0, // the event stream may be quiet for long
        fetch(request) {
          if (request.headers.get("authorization") !== expected) return new Response("Unauthorized", { status: 401 })
          const { pathname, search } = new URL(request.url)
          const forwarded = new Headers(request.headers)
          forwarded.delete("host")
          forwarded.delete("authorization")
          if (credentials) forwarded.set("authorization", credentials)
          const target = baseUrl.replace(/\/$/, "") + pathname + search
          const body = ["GET", "HEAD"].includes(request.method) ? undefined : request.body
          return fetch(new Request(target, { method: request.method, headers: forwarded, body, duplex: "half", signal: request.signal }))
        },
      })
    }
    return proxy.url.href.replace(/\/$/, "")
  }

  const tell = async (sessionID, message) => {
    await client.tui.showToast({ body: { title: "Orchestrator", message, variant: "error" } }).catch(() => {})
    const parts = [{ type: "text", text: `Orchestrator: ${message}` }]
    await client.session.prompt({ path: { id: sessionID }, body: { noReply: true, parts } }).catch(() => {})
  }

  mkdirSync(state, { recursive: true })
  if (!existsSync(join(state, ".gitignore"))) writeFileSync(join(state, ".gitignore"), GITIGNORE)
  // For `orchestrator doctor`: which OpenCode process has loaded this plugin.
  writeFileSync(join(state, "plugin.json"), JSON.stringify({ pid: process.pid, loaded: new Date().toISOString() }) + "\n")

  return {
    event: async ({ event }) => {
      if (event.type !== "command.executed" || event.properties.name !== "task") return
      const { sessionID, messageID } = event.properties
      const program = findBinary()
      if (!program) {
        const where = RECORDED ? `at ${RECORDED} (where \`orchestrator install\` ran from) nor` : "not"
        return tell(
          sessionID,
          `cannot run this mission: the orchestrator binary is neither ${where} on this OpenCode's PATH. ` +
            "Install it, run `orchestrator install` again, and restart OpenCode.",
        )
      }
      let url
      try {
        url = serverUrl()
      } catch (error) {
        return tell(sessionID, `cannot run this mission: no way to reach this OpenCode's API from its plugin (${error})`)
      }
      const log = openSync(join(state, "plugin.log"), "a")
      const args = ["task", "--url", url, "--password-env", "ORCHESTRATOR_PLUGIN_TOKEN", "--project", directory]
      args.push("--session", sessionID, "--command-message", messageID, "--", event.properties.arguments ?? "")
      const env = { ...process.env, ORCHESTRATOR_PLUGIN_TOKEN: token }
      const child = spawn(program, args, { cwd: directory, detached: true, stdio: ["ignore", log, log], env })
      closeSync(log)
      child.on("error", (error) => tell(sessionID, `could not start ${program}: ${error.message}`))
      child.on("exit", (code, signal) => {
        // 0, 1 and 3 (done, not done, paused) and 130/143 (stopped) were reported in the session already.
        if ([0, 1, 3, 130, 143].includes(code)) return
        const message = `the orchestrator ended with ${signal ?? `status ${code}`}: see .opencode/orchestrator/plugin.log`
        client.tui.showToast({ body: { title: "Orchestrator", message, variant: "error" } }).catch(() => {})
      })
      child.unref()
    },
  }
}
