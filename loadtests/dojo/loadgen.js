#!/usr/bin/env node
'use strict'
/**
 * make bench-dojo load generator: S rooms x P participants, each a stock y-websocket
 * `WebsocketProvider` (its own Y.Doc, its own websocket) typing K characters per second at
 * random positions of `files.get('main.py')`.
 *
 *   node loadgen.js --url ws://127.0.0.1:8000/v1/dojos --rooms-file rooms.txt \
 *        --participants 8 --cps 3 --warmup 5 --duration 30 [--token T] [--token T2]
 *
 * `--rooms-file`: one room per line (`<dojo id>/sync` for the gateway, any name for the
 * reference server). `--token` (repeatable) is passed as the `token` query parameter,
 * participants take the tokens in turn. Without `--go-at`, the generator prints
 * `{"event":"ready"}` once every client is connected and synced, then waits for a line
 * `go <epoch ms>` on stdin: typing starts at that wall-clock time (so several generator
 * processes start together). Warm-up edits are not measured; the measured window is the
 * next `--duration` seconds; then typing stops and the generator waits up to `--drain`
 * seconds for the last deliveries before it prints `{"event":"result", ...}` and exits.
 *
 * Latency: every client is in this process, so an edit is identified by its Yjs item id
 * (client id, clock): the sender records performance.now() right before its one-character
 * insert, and each peer's doc records performance.now() when a remote transaction
 * integrates that clock (`afterTransaction`: beforeState -> afterState). Latency = receive -
 * send, for each (edit, peer) pair, i.e. edit-to-every-peer through the server, including
 * the generator's own event-loop delays (reported as `loop_delay_*`).
 *
 * stdout: JSON lines only (`ready`, `result`); progress goes to stderr.
 */

const { performance, monitorEventLoopDelay, PerformanceObserver } = require('node:perf_hooks')
const fs = require('node:fs')
const readline = require('node:readline')
const WebSocket = require('ws')
const Y = require('yjs')
const { WebsocketProvider } = require('y-websocket')

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz  ()=:.\n'
const FILE = 'main.py'
const LOOP_RESOLUTION_MS = 10 // the histogram records whole timer periods: subtract it

function parseArgs (argv) {
  const opts = {
    url: 'ws://127.0.0.1:1234',
    rooms: [],
    participants: 8,
    cps: 3,
    warmup: 5,
    duration: 30,
    drain: 5,
    connectTimeout: 180,
    connectBatch: 16,
    connectGapMs: 25,
    tokens: [],
    goAt: null,
    latenciesOut: null,
    timelineOut: null,
    headers: {},
    label: 'loadgen'
  }
  for (let i = 2; i < argv.length; i++) {
    const key = argv[i]
    const value = argv[i + 1]
    i++
    switch (key) {
      case '--url': opts.url = value.replace(/\/+$/, ''); break
      case '--rooms': opts.rooms.push(...value.split(',').filter(Boolean)); break
      case '--rooms-file':
        opts.rooms.push(...fs.readFileSync(value, 'utf8').split('\n').map(s => s.trim()).filter(Boolean))
        break
      case '--participants': opts.participants = parseInt(value, 10); break
      case '--cps': opts.cps = parseFloat(value); break
      case '--warmup': opts.warmup = parseFloat(value); break
      case '--duration': opts.duration = parseFloat(value); break
      case '--drain': opts.drain = parseFloat(value); break
      case '--connect-timeout': opts.connectTimeout = parseFloat(value); break
      case '--connect-batch': opts.connectBatch = parseInt(value, 10); break
      case '--connect-gap-ms': opts.connectGapMs = parseFloat(value); break
      case '--token': opts.tokens.push(value); break
      case '--go-at': opts.goAt = value === 'now' ? 'now' : parseFloat(value); break
      case '--latencies-out': opts.latenciesOut = value; break
      case '--timeline-out': opts.timelineOut = value; break
      case '--header': { // investigation only: browsers cannot set websocket headers
        const at = value.indexOf(':')
        opts.headers[value.slice(0, at).trim()] = value.slice(at + 1).trim()
        break
      }
      case '--label': opts.label = value; break
      default:
        throw new Error(`unknown option ${key}`)
    }
  }
  if (opts.rooms.length === 0) throw new Error('no rooms: --rooms a,b or --rooms-file FILE')
  if (!(opts.participants >= 2)) throw new Error('--participants must be at least 2')
  if (!(opts.cps > 0)) throw new Error('--cps must be positive')
  return opts
}

const opts = parseArgs(process.argv)
process.setMaxListeners(0) // every WebsocketProvider adds an 'exit' listener
const log = (msg) => process.stderr.write(`[${opts.label}] ${msg}\n`)
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

// ----------------------------------------------------------------------------- state

/** edit key (client id * 2^21 + clock) -> send time (ms, performance.now) of measured edits */
const sent = new Map()
/** edit key -> how many peers have integrated it */
const received = new Map()
const latencies = [] // ms, one per measured (edit, peer) delivery
// --timeline-out (investigation): per delivery, [send time (ms since the epoch), latency (ms),
// room index, sending client's room index, receiving client's room index]
const timeline = []
const roomIndex = new Map() // room -> its index in --rooms
const participantOf = new Map() // Yjs client id -> its participant index in its room
let measuring = false // edits made now are measured
let typing = false
let editsTotal = 0 // every edit made (warm-up and measured)
let editsMeasured = 0
let deliveriesMeasured = 0
let lateDeliveries = 0 // measured deliveries that arrived after the window closed (drain)
let windowClosed = false
let disconnects = 0
let connectionErrors = 0
let closeCodes = {}
const CLOCK_BITS = 2 ** 21 // > clocks any client reaches in a run (one per character)

function editKey (client, clock) {
  return client * CLOCK_BITS + clock
}

/** @type {{room: string, index: number, doc: Y.Doc, provider: WebsocketProvider, text: Y.Text|null, timer: any}[]} */
const clients = []

function textOf (doc) {
  const value = doc.getMap('files').get(FILE)
  return value instanceof Y.Text ? value : null
}

/** frames and bytes the clients received during the measured window, by Yjs message type */
const inbound = { frames: 0, bytes: 0, by_type: {} }

/** `ws` that counts what it receives (and sends extra handshake headers with --header,
 * for investigation only) */
const CountingWebSocket = class extends WebSocket {
  constructor (url, protocols) {
    super(url, protocols, Object.keys(opts.headers).length > 0 ? { headers: opts.headers } : {})
    this.on('message', (data) => {
      if (!measuring) return
      const buf = Buffer.isBuffer(data) ? data : Buffer.from(data)
      inbound.frames++
      inbound.bytes += buf.length
      // y-protocols: 0 = sync (then 0 step 1, 1 step 2, 2 update), 1 = awareness
      const kind = buf[0] === 0 ? `sync.${buf[1]}` : String(buf[0])
      inbound.by_type[kind] = (inbound.by_type[kind] || 0) + 1
    })
  }
}

function makeClient (room, index) {
  const doc = new Y.Doc()
  const params = {}
  if (opts.tokens.length > 0) params.token = opts.tokens[index % opts.tokens.length]
  const provider = new WebsocketProvider(opts.url, room, doc, {
    WebSocketPolyfill: CountingWebSocket,
    params,
    disableBc: true, // Node 20 has BroadcastChannel: peers in this process would bypass the server
    maxBackoffTime: 2500
  })
  const client = { room, index, doc, provider, text: null, timer: null, syncedOnce: false }
  participantOf.set(doc.clientID, index)
  if (!roomIndex.has(room)) roomIndex.set(room, roomIndex.size)
  provider.on('status', ({ status }) => {
    if (status === 'disconnected') disconnects++
  })
  provider.on('synced', (state) => {
    if (state) client.syncedOnce = true
  })
  provider.on('connection-error', () => { connectionErrors++ })
  provider.on('connection-close', (event) => {
    const code = event && event.code !== undefined ? String(event.code) : '?'
    const reason = event && event.reason ? ` ${String(event.reason).slice(0, 60)}` : ''
    closeCodes[code + reason] = (closeCodes[code + reason] || 0) + 1
  })
  doc.on('afterTransaction', (tr) => {
    if (tr.local) return
    const now = performance.now()
    const own = doc.clientID
    tr.afterState.forEach((after, client) => {
      if (client === own) return
      const before = tr.beforeState.get(client) || 0
      for (let clock = before; clock < after; clock++) {
        const key = editKey(client, clock)
        const t0 = sent.get(key)
        if (t0 === undefined) continue
        latencies.push(now - t0)
        if (opts.timelineOut) {
          timeline.push(performance.timeOrigin + t0, now - t0, roomIndex.get(room),
            participantOf.get(client) ?? -1, index)
        }
        received.set(key, (received.get(key) || 0) + 1)
        deliveriesMeasured++
        if (windowClosed) lateDeliveries++
      }
    })
  })
  clients.push(client)
  return client
}

function typeOne (client) {
  // a user keeps typing while the socket reconnects: y-websocket sends those edits with the
  // sync exchange once it is back, and their latency includes the outage
  const text = client.text || (client.text = textOf(client.doc))
  if (text === null) return
  const pos = Math.floor(Math.random() * (text.length + 1))
  const ch = ALPHABET[Math.floor(Math.random() * ALPHABET.length)]
  const clock = Y.getState(client.doc.store, client.doc.clientID)
  const t0 = performance.now()
  if (measuring) {
    sent.set(editKey(client.doc.clientID, clock), t0)
    editsMeasured++
  }
  editsTotal++
  text.insert(pos, ch) // one transaction -> one update -> one message to the server
}

function startTyping (client, startMs) {
  const period = 1000 / opts.cps
  let n = 0
  const phase = Math.random() * period
  const tick = () => {
    if (!typing) return
    typeOne(client)
    n++
    // absolute schedule: no drift when a tick runs late
    const next = startMs + phase + n * period
    client.timer = setTimeout(tick, Math.max(0, next - performance.now()))
  }
  client.timer = setTimeout(tick, Math.max(0, startMs + phase - performance.now()))
}

function percentile (sorted, q) {
  if (sorted.length === 0) return null
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[idx]
}

async function waitFor (predicate, timeoutMs, what) {
  const describe = () => (typeof what === 'function' ? what() : what)
  const deadline = performance.now() + timeoutMs
  let nextLog = performance.now() + 10000
  while (!predicate()) {
    const now = performance.now()
    if (now > deadline) throw new Error(`timed out waiting for ${describe()}`)
    if (now > nextLog) {
      log(`still waiting for ${describe()} (${disconnects} disconnects so far)`)
      nextLog = now + 10000
    }
    await sleep(50)
  }
}

async function waitForGo () {
  if (opts.goAt === 'now') return Date.now() + 200
  if (typeof opts.goAt === 'number') return opts.goAt
  emit({ event: 'ready', clients: clients.length })
  const rl = readline.createInterface({ input: process.stdin })
  for await (const line of rl) {
    const m = /^go\s+(\d+(?:\.\d+)?)/.exec(line.trim())
    if (m) {
      rl.close()
      return parseFloat(m[1])
    }
    if (line.trim() === 'quit') process.exit(3)
  }
  throw new Error('stdin closed before "go"')
}

async function main () {
  const t0 = performance.now()
  const rooms = opts.rooms
  const P = opts.participants
  log(`${rooms.length} rooms x ${P} participants at ${opts.url}, ${opts.cps} chars/s each`)
  const timeoutMs = opts.connectTimeout * 1000
  const connect = async (pairs) => {
    // small batches: hundreds of simultaneous handshakes are a benchmark of their own
    for (let k = 0; k < pairs.length; k += opts.connectBatch) {
      for (const [room, i] of pairs.slice(k, k + opts.connectBatch)) makeClient(room, i)
      await sleep(opts.connectGapMs)
    }
  }
  // the host of each dojo first (on the gateway that starts the dojo's session), then the rest
  await connect(rooms.map(room => [room, 0]))
  await waitFor(() => clients.every(c => c.syncedOnce), timeoutMs,
    () => `${clients.filter(c => !c.syncedOnce).length} of ${rooms.length} hosts to sync`)
  const rest = []
  for (let i = 1; i < P; i++) for (const room of rooms) rest.push([room, i])
  await connect(rest)
  // every client synced at least once (a server that drops sockets may never have them all
  // connected at the same moment; the drops show as disconnects)
  await waitFor(() => clients.every(c => c.syncedOnce), timeoutMs,
    () => `${clients.filter(c => !c.syncedOnce).length} of ${clients.length} clients to sync`)
  // the reference server starts empty: participant 0 of each room creates the file; the
  // gateway's dojos already have it (the dojo was created with files {"main.py": ""})
  for (const c of clients) {
    if (c.index === 0 && textOf(c.doc) === null) c.doc.getMap('files').set(FILE, new Y.Text())
  }
  await waitFor(() => clients.every(c => textOf(c.doc) !== null), timeoutMs,
    `every client to see ${FILE}`)
  const setupS = (performance.now() - t0) / 1000
  log(`${clients.length} clients connected and synced in ${setupS.toFixed(1)}s`)
  const disconnectsBefore = disconnects

  const goAtEpoch = await waitForGo()
  const startPerf = performance.now() + Math.max(0, goAtEpoch - Date.now())
  const warmupEnd = startPerf + opts.warmup * 1000
  const windowEnd = warmupEnd + opts.duration * 1000
  typing = true
  for (const c of clients) startTyping(c, startPerf)
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS })
  const cpuStart = { usage: null }
  await sleep(Math.max(0, warmupEnd - performance.now()))
  measuring = true
  loop.enable()
  // the generator's own garbage-collection pauses in the window: a pause delays every
  // delivery this process is receiving, whichever server is measured
  const gc = { count: 0, total: 0, max: 0, over10: 0 }
  const gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gc.count++
      gc.total += entry.duration
      gc.max = Math.max(gc.max, entry.duration)
      if (entry.duration > 10) gc.over10++
    }
  })
  gcObserver.observe({ entryTypes: ['gc'] })
  cpuStart.usage = process.cpuUsage()
  log(`measuring for ${opts.duration}s`)
  await sleep(Math.max(0, windowEnd - performance.now()))
  measuring = false
  typing = false
  const cpu = process.cpuUsage(cpuStart.usage)
  loop.disable()
  gcObserver.disconnect()
  for (const c of clients) clearTimeout(c.timer)
  const expected = editsMeasured * (P - 1)
  const drainDeadline = performance.now() + opts.drain * 1000
  windowClosed = true
  while (deliveriesMeasured < expected && performance.now() < drainDeadline) await sleep(50)
  const drainedS = (performance.now() - windowEnd) / 1000

  const sorted = Float64Array.from(latencies).sort()
  // raw samples (float64, host order) so a driver can merge several generator processes
  if (opts.latenciesOut) fs.writeFileSync(opts.latenciesOut, Buffer.from(sorted.buffer))
  if (opts.timelineOut) fs.writeFileSync(opts.timelineOut, Buffer.from(Float64Array.from(timeline).buffer))
  const disconnectsDuring = disconnects - disconnectsBefore
  let editsNotEverywhere = 0
  for (const key of sent.keys()) if ((received.get(key) || 0) < P - 1) editsNotEverywhere++
  const ms = (v) => (v === null ? null : Math.round(v * 1000) / 1000)
  const byRoom = new Map()
  for (const c of clients) byRoom.set(c.room, [...(byRoom.get(c.room) || []), c])
  emit({
    event: 'result',
    label: opts.label,
    rooms: rooms.length,
    participants: P,
    clients: clients.length,
    cps: opts.cps,
    warmup_s: opts.warmup,
    duration_s: opts.duration,
    setup_s: Math.round(setupS * 100) / 100,
    drained_s: Math.round(drainedS * 100) / 100,
    edits_total: editsTotal,
    edits_measured: editsMeasured,
    edits_per_s: editsMeasured / opts.duration,
    deliveries_expected: expected,
    deliveries: deliveriesMeasured,
    deliveries_missing: expected - deliveriesMeasured,
    deliveries_late: lateDeliveries,
    edits_not_everywhere: editsNotEverywhere,
    deliveries_per_s: deliveriesMeasured / opts.duration,
    inbound_frames_per_s: inbound.frames / opts.duration,
    inbound_bytes_per_s: inbound.bytes / opts.duration,
    inbound_by_type: inbound.by_type,
    latency_ms: {
      p50: ms(percentile(sorted, 0.5)),
      p95: ms(percentile(sorted, 0.95)),
      p99: ms(percentile(sorted, 0.99)),
      p999: ms(percentile(sorted, 0.999)),
      max: ms(sorted.length ? sorted[sorted.length - 1] : null),
      mean: ms(sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : null)
    },
    loop_delay_ms: {
      p50: ms(Math.max(0, loop.percentile(50) / 1e6 - LOOP_RESOLUTION_MS)),
      p99: ms(Math.max(0, loop.percentile(99) / 1e6 - LOOP_RESOLUTION_MS)),
      max: ms(Math.max(0, loop.max / 1e6 - LOOP_RESOLUTION_MS))
    },
    gc_pauses: { count: gc.count, total_ms: ms(gc.total), max_ms: ms(gc.max), over_10ms: gc.over10 },
    loadgen_cpu_pct: Math.round(((cpu.user + cpu.system) / 1e6 / opts.duration) * 1000) / 10,
    disconnects_during_run: disconnectsDuring,
    disconnects_total: disconnects,
    connection_errors: connectionErrors,
    close_codes: closeCodes,
    // [room, client id, clock]: each client's own edits are clocks 0..clock-1, one per
    // character (participant 0 on the reference server also spent one creating main.py)
    // [room, client id, own clock, highest clock of it any peer integrated (what the server
    // relayed)]
    own_clocks: clients.map(c => [c.room, c.doc.clientID, Y.getState(c.doc.store, c.doc.clientID),
      Math.max(0, ...(byRoom.get(c.room) || []).filter(p => p !== c)
        .map(p => Y.getState(p.doc.store, c.doc.clientID)))])
  })
  for (const c of clients) {
    c.provider.destroy()
    c.doc.destroy()
  }
  setTimeout(() => process.exit(0), 300)
}

main().catch((err) => {
  log(`failed: ${err && err.stack ? err.stack : err}`)
  emit({ event: 'error', label: opts.label, message: String(err && err.message ? err.message : err) })
  process.exit(2)
})
