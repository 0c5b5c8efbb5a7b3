// A stock Yjs client (yjs + y-websocket WebsocketProvider) for the interop tests.
// Usage: node interop_client.js <serverUrl> <room> <token> <name> <edits> <expectJson>
// Connects, types <edits> characters into files/<name>.js, sets its awareness, waits until
// the document contains every file listed in <expectJson> with at least its content, and
// until it has seen an awareness state named "py-client"; prints what it saw as JSON.
const Y = require('yjs')
const { WebsocketProvider } = require('y-websocket')
const WebSocket = require('ws')

const [serverUrl, room, token, name, editsArg, expectJson] = process.argv.slice(2)
const expect = JSON.parse(expectJson)
const doc = new Y.Doc()
const provider = new WebsocketProvider(serverUrl, room, doc, {
  WebSocketPolyfill: WebSocket,
  params: { token },
  disableBc: true
})
provider.awareness.setLocalStateField('user', { name, cursor: 3 })
const files = doc.getMap('files')
const deadline = Date.now() + 30000

function snapshot () {
  const out = {}
  files.forEach((text, path) => { out[path] = text.toString() })
  return out
}

function awarenessNames () {
  return [...provider.awareness.getStates().values()]
    .map(s => s.user && s.user.name).filter(Boolean)
}

function done () {
  const seen = snapshot()
  const complete = Object.entries(expect).every(([p, c]) => (seen[p] || '').includes(c))
  return complete && awarenessNames().includes('py-client')
}

provider.on('sync', (synced) => {
  if (!synced) return
  doc.transact(() => {
    if (!files.has(`${name}.js`)) files.set(`${name}.js`, new Y.Text())
  })
  let i = 0
  const timer = setInterval(() => {
    if (i >= Number(editsArg)) { clearInterval(timer); return }
    const text = files.get(`${name}.js`)
    text.insert(text.length, String.fromCharCode(97 + (i % 26)))
    i += 1
  }, 5)
})

const check = setInterval(() => {
  if (done() || Date.now() > deadline) {
    clearInterval(check)
    // Give our last updates a moment to leave, then report.
    setTimeout(() => {
      console.log(JSON.stringify({ files: snapshot(), awareness: awarenessNames(), ok: done() }))
      provider.destroy()
      process.exit(0)
    }, 300)
  }
}, 20)
