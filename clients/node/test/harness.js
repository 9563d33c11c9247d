// A real `store-sql serve` for the tests: its own temporary directory, database and token
// file, on a unix socket or a loopback TCP port, stopped (SIGTERM) when the test ends.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import http from "node:http";
import https from "node:https";
import { execFileSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** The `store-sql` command: $STORE_SQL_BIN, else the repository's virtualenv. */
export function storeSqlCommand() {
  return process.env.STORE_SQL_BIN ?? join(REPO, ".venv", "bin", "store-sql");
}

async function freePort() {
  const server = createServer();
  await new Promise((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address();
  await new Promise((done) => server.close(done));
  return port;
}

/**
 * A self-signed certificate for 127.0.0.1 made with the openssl command, or undefined when
 * openssl is not installed.
 */
export function selfSignedCertificate(dir) {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  try {
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
      { stdio: "ignore" },
    );
  } catch (error) {
    if (error.code === "ENOENT") return undefined;
    throw error;
  }
  return { cert, key, ca: readFileSync(cert) };
}

/** GET /v1/health once; true when it answers 200. */
function healthy(target) {
  return new Promise((done) => {
    const get = target.ca ? https.get : http.get;
    const req = get({ ...target, path: "/v1/health", timeout: 1000 }, (res) => {
      res.resume();
      done(res.statusCode === 200);
    });
    req.on("error", () => done(false));
    req.on("timeout", () => req.destroy());
  });
}

export class ServerUnderTest {
  /**
   * @param {{transport?: "unix" | "tcp", dir?: string, db?: string, extraArgs?: string[],
   *   tls?: {cert: string, key: string, ca: Buffer}}} [options]
   */
  static async start(options = {}) {
    const dir = options.dir ?? mkdtempSync(join(tmpdir(), "store-sql-client-"));
    const server = new ServerUnderTest(dir, options);
    await server.#launch();
    return server;
  }

  constructor(dir, options) {
    this.dir = dir;
    this.transport = options.transport ?? "unix";
    this.db = options.db ?? join(dir, "store.sqlite");
    this.tokenFile = join(dir, "store.token");
    this.socketPath = join(dir, "serve.sock");
    this.extraArgs = options.extraArgs ?? [];
    this.tls = options.tls;
    this.port = undefined;
    this.output = "";
  }

  async #launch() {
    const args = ["serve", "--db", this.db, "--token-file", this.tokenFile, ...this.extraArgs];
    if (this.transport === "unix") {
      args.push("--socket", this.socketPath);
    } else {
      this.port ??= await freePort();
      args.push("--host", "127.0.0.1", "--port", String(this.port));
    }
    if (this.tls) args.push("--tls-cert", this.tls.cert, "--tls-key", this.tls.key);
    this.child = spawn(storeSqlCommand(), args, { stdio: ["ignore", "pipe", "pipe"] });
    this.child.stdout.on("data", (chunk) => (this.output += chunk));
    this.child.stderr.on("data", (chunk) => (this.output += chunk));
    this.exited = new Promise((done) => this.child.on("exit", (code, signal) => done({ code, signal })));
    const target =
      this.transport === "unix"
        ? { socketPath: this.socketPath }
        : { host: "127.0.0.1", port: this.port, ca: this.tls?.ca };
    const deadline = Date.now() + 60_000;
    let exit;
    this.exited.then((value) => (exit = value));
    while (!(await healthy(target))) {
      if (exit) throw new Error(`store-sql serve exited (${JSON.stringify(exit)}):\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`store-sql serve did not answer in 60 s:\n${this.output}`);
      await sleep(50);
    }
  }

  /** Options for a StoreClient that talks to this server. */
  clientOptions(extra = {}) {
    const scheme = this.tls ? "https" : "http";
    const where =
      this.transport === "unix" ? { socketPath: this.socketPath } : { url: `${scheme}://127.0.0.1:${this.port}` };
    return { ...where, tokenFile: this.tokenFile, ...(this.tls ? { ca: this.tls.ca } : {}), ...extra };
  }

  get token() {
    return readFileSync(this.tokenFile, "utf8").trim();
  }

  /** Stops the server: SIGTERM (graceful: the writer drains), or SIGKILL. */
  async stop(signal = "SIGTERM") {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return await this.exited;
  }

  /** Starts the same server again on the same database, socket and port. */
  async restart(signal = "SIGTERM") {
    await this.stop(signal);
    if (this.transport === "unix" && existsSync(this.socketPath) && signal === "SIGKILL") {
      rmSync(this.socketPath);
    }
    await this.#launch();
  }

  async close() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
