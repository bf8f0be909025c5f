/**
 * A small RFC 4180 CSV parser for the shipped benchmark files (AdvBench, HarmBench, JBB, StrongREJECT,
 * XSTest, MMLU). Handles quoted fields with embedded commas, doubled quotes and newlines (HarmBench's quoted
 * `ContextString` holds bare LF inside CRLF rows), CRLF or LF record ends, a missing final newline and a
 * leading UTF-8 BOM. No dependency: the files are small (< 1 MB) and the grammar is short.
 */
import { FormatError } from "../errors.ts";

/**
 * Parses CSV text into rows of string fields.
 * A record ends at LF or CRLF outside quotes; a lone CR outside quotes also ends a record. Empty lines are
 * skipped. Throws FormatError (`csv.unterminated_quote` / `csv.bad_quote`) naming `source` and the line.
 */
export function parseCsv(text: string, source = "<csv>"): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  let rowStarted = false; // distinguishes an empty line from a record with one empty field
  let fieldTouched = false; // the current field has consumed characters (a quote then is literal)
  const n = text.length;
  const endRecord = (): void => {
    if (rowStarted) {
      row.push(field);
      rows.push(row);
    }
    row = [];
    field = "";
    rowStarted = false;
    fieldTouched = false;
  };
  while (i < n) {
    const c = text[i];
    if (c === '"' && !fieldTouched) {
      // quoted field
      const startLine = line;
      i++;
      let closed = false;
      while (i < n) {
        const q = text[i];
        if (q === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          closed = true;
          break;
        }
        if (q === "\n") line++;
        field += q;
        i++;
      }
      if (!closed) {
        throw new FormatError("csv.unterminated_quote", `unterminated quoted field in ${source}: got end of file, expected a closing quote (field starts on line ${startLine})`, {
          details: { file: source, line: startLine },
        });
      }
      rowStarted = true;
      fieldTouched = true;
      const next = text[i];
      if (i < n && next !== "," && next !== "\n" && next !== "\r") {
        throw new FormatError("csv.bad_quote", `bad quoting in ${source} line ${line}: got ${JSON.stringify(next)} after a closing quote, expected a comma or end of line`, {
          details: { file: source, line },
        });
      }
      continue;
    }
    if (c === ",") {
      row.push(field);
      field = "";
      rowStarted = true;
      fieldTouched = false;
      i++;
      continue;
    }
    if (c === "\r" || c === "\n") {
      endRecord();
      if (c === "\r" && text[i + 1] === "\n") i++;
      i++;
      line++;
      continue;
    }
    field += c;
    rowStarted = true;
    fieldTouched = true;
    i++;
  }
  endRecord();
  return rows;
}

/**
 * Parses CSV with a header row into objects keyed by the lower-cased header names (JBB ships both `goal` and
 * `Goal` spellings). Throws FormatError `csv.ragged` if a row's field count differs from the header's.
 */
export function parseCsvRecords(text: string, source = "<csv>"): Array<Record<string, string>> {
  const rows = parseCsv(text, source);
  if (rows.length === 0) return [];
  const header = rows[0].map((h) => h.trim().toLowerCase());
  const out: Array<Record<string, string>> = [];
  for (let r = 1; r < rows.length; r++) {
    const row = rows[r];
    if (row.length !== header.length) {
      throw new FormatError("csv.ragged", `row ${r + 1} of ${source}: got ${row.length} fields, expected ${header.length} (${header.join(",")})`, {
        details: { file: source, row: r + 1, got: row.length, expected: header.length },
      });
    }
    const rec: Record<string, string> = {};
    for (let c = 0; c < header.length; c++) rec[header[c]] = row[c];
    out.push(rec);
  }
  return out;
}
