// The text/event-stream parser against the format's rules, chunked at every byte.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseEventStream } from "../src/index.js";

async function parse(chunks) {
  async function* source() {
    for (const chunk of chunks) yield Buffer.from(chunk);
  }
  const out = [];
  for await (const event of parseEventStream(source())) out.push(event);
  return out;
}

const STREAM =
  ": a comment\n" +
  "id: 7\nevent: append\ndata: {\"a\":1}\n\n" +
  "data: line one\r\ndata: line two\r\n\r\n" +
  "id\nevent: resync\ndata:\n\n" +
  "retry: 1500\ndata: é ✓\rid: 9\r\r" +
  "data: never dispatched";

const EXPECTED = [
  { event: "append", data: '{"a":1}', id: "7", retry: undefined },
  { event: "message", data: "line one\nline two", id: "7", retry: undefined },
  { event: "resync", data: "", id: "", retry: undefined },
  { event: "message", data: "é ✓", id: "9", retry: 1500 },
];

test("events, ids, multi-line data, comments and every line ending parse as the format says", async () => {
  assert.deepEqual(await parse([STREAM]), EXPECTED);
});

test("the same stream split at every byte parses the same (UTF-8 and CRLF across chunks)", async () => {
  const bytes = Buffer.from(STREAM);
  for (let cut = 1; cut < bytes.length; cut++) {
    assert.deepEqual(await parse([bytes.subarray(0, cut), bytes.subarray(cut)]), EXPECTED, `cut at ${cut}`);
  }
  assert.deepEqual(await parse([...bytes].map((b) => Buffer.from([b]))), EXPECTED);
});

test("a leading byte order mark is dropped and an event without data is not dispatched", async () => {
  assert.deepEqual(await parse(["\ufeffdata: x\n\nevent: empty\n\n"]), [
    { event: "message", data: "x", id: undefined, retry: undefined },
  ]);
});
