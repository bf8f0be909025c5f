import { test } from "node:test";
import assert from "node:assert/strict";
import { parseCsv, parseCsvRecords } from "./csv.ts";

test("parseCsv: quotes, doubled quotes, embedded commas and newlines, CRLF, no final newline, BOM", () => {
  const text = '\ufeffa,b,c\r\n1,"x, y","line1\nline2"\r\n2,"say ""hi""",\r\n"3",,"trailing space "';
  assert.deepEqual(parseCsv(text), [
    ["a", "b", "c"],
    ["1", "x, y", "line1\nline2"],
    ["2", 'say "hi"', ""],
    ["3", "", "trailing space "],
  ]);
});

test("parseCsv: LF files with a trailing newline, empty lines skipped, quote inside a bare field is literal", () => {
  assert.deepEqual(parseCsv("a,b\n\n1,2\n"), [["a", "b"], ["1", "2"]]);
  assert.deepEqual(parseCsv('5 o"clock,x\n'), [['5 o"clock', "x"]]);
});

test("parseCsv: errors name the source", () => {
  assert.throws(() => parseCsv('a,"open\n', "f.csv"), { code: "csv.unterminated_quote", message: /f\.csv/ });
  assert.throws(() => parseCsv('"a"b,c', "f.csv"), { code: "csv.bad_quote" });
  assert.throws(() => parseCsvRecords("a,b\n1,2,3\n", "g.csv"), { code: "csv.ragged", message: /row 2 of g\.csv/ });
});

test("parseCsvRecords: lower-cased header keys", () => {
  assert.deepEqual(parseCsvRecords("Index,Goal\n0,do x\n"), [{ index: "0", goal: "do x" }]);
});
