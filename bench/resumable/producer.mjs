// The service's resume as it is built today (npm resumable-stream, Redis pub/sub, chunks kept in
// the producing process's memory), as a benchmark peer. One process is one service instance.
//   REDIS_URL=redis://127.0.0.1:6379 node producer.mjs <port>
//   POST /produce/<id>?n=<events>   streams n SSE events at once, then holds the stream open
//   POST /finish/<id>               ends a held stream
//   GET  /resume/<id>               resumeExistingStream: 204 when none or done, else the replay
import http from 'node:http';
import { createResumableStreamContext } from 'resumable-stream';

const port = Number(process.argv[2]);
const context = createResumableStreamContext({ waitUntil: null });
const held = new Map();

function events(id, n) {
  let release;
  const finished = new Promise((resolve) => { release = resolve; });
  held.set(id, release);
  return new ReadableStream({
    async start(controller) {
      controller.enqueue(`data: {"type":"start","messageId":"${id}"}\n\n`);
      for (let i = 1; i < n; i++) {
        controller.enqueue(`data: {"type":"text-delta","id":"txt_0","delta":"${String(i).padEnd(40, 'x')}"}\n\n`);
      }
      await finished;
      controller.enqueue('data: [DONE]\n\n');
      controller.close();
    },
  });
}

async function pipe(stream, response) {
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    response.write(value);
  }
  response.end();
}

http.createServer(async (request, response) => {
  try {
    const url = new URL(request.url, 'http://localhost');
    const [, action, id] = url.pathname.split('/');
    if (request.method === 'POST' && action === 'produce') {
      const stream = await context.resumableStream(id, () => events(id, Number(url.searchParams.get('n') ?? 100)));
      await pipe(stream, response);
    } else if (request.method === 'POST' && action === 'finish') {
      held.get(id)?.();
      response.writeHead(204).end();
    } else if (request.method === 'GET' && action === 'resume') {
      const stream = await context.resumeExistingStream(id);
      if (!stream) {
        response.writeHead(204).end();
        return;
      }
      await pipe(stream, response);
    } else if (action === 'ready') {
      response.writeHead(200).end('ready');
    } else {
      response.writeHead(404).end();
    }
  } catch (error) {
    if (!response.headersSent) {
      response.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(error?.message ?? error) }));
    } else {
      response.destroy(error);
    }
  }
}).listen(port, '127.0.0.1');
