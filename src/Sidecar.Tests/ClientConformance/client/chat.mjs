// Sends one chat message with the real AI SDK v5 client (AbstractChat + DefaultChatTransport,
// what @ai-sdk/react's useChat runs) and prints, as one JSON line, how the client ended:
// its status, its error, the assistant message it assembled and the transient data parts it saw.
//   node chat.mjs <chat url> <session id> <message text> [bearer token]
import { AbstractChat, DefaultChatTransport } from 'ai';

class State {
  status = 'ready';
  error = undefined;
  messages = [];
  pushMessage = (m) => { this.messages = this.messages.concat(m); };
  popMessage = () => { this.messages = this.messages.slice(0, -1); };
  replaceMessage = (i, m) => { this.messages = [...this.messages.slice(0, i), m, ...this.messages.slice(i + 1)]; };
  snapshot = (thing) => structuredClone(thing);
}

class Chat extends AbstractChat {
  constructor(options) { super({ ...options, state: new State() }); }
}

const [url, sessionId, text, bearer] = process.argv.slice(2);
const data = [];
const chat = new Chat({
  id: sessionId,
  transport: new DefaultChatTransport({ api: url, headers: bearer ? { Authorization: `Bearer ${bearer}` } : undefined }),
  onData: (part) => data.push(part),
  onError: () => {},
});

await chat.sendMessage({ text });
const assistant = chat.messages.find((m) => m.role === 'assistant') ?? null;
process.stdout.write(JSON.stringify({
  status: chat.status,
  error: chat.error ? { name: chat.error.name, message: chat.error.message } : null,
  assistant,
  data,
}) + '\n');
