#!/usr/bin/env python3
"""Ground truth for trifecta's codecs: how this Python decodes every byte sequence a codec
defines, and what its codec lookup makes of many spellings of every codec name.

Usage:
  codec_probe.py decode OUTDIR CODEC...
      For each CODEC (a module of the `encodings` package) writes probe inputs and Python's
      answers: OUTDIR/<codec>.<set>.bin, the bytes, and OUTDIR/<codec>.<set>.json,
      {"text": ..., "errors": [[start, end, reason, str(error)], ...]}: the text decoded with
      errors="replace" (each undecodable sequence one U+FFFD, resuming where the codec resumes)
      and every error in order.
  codec_probe.py names
      Prints JSON lines {"name", "source" (hex), "outcome", "value"}: for every cookie spelling
      and probe string, the module `# coding: <name>` then `x = '<probe bytes>'`; outcome is "ok"
      when `ast.parse` accepts it (value is then the string's value), else the SyntaxError
      message.

Probe sets: "bytes" (every single byte, each then a newline), "pairs" (every two-byte sequence
starting at or above 0x80, each then a newline), and for codecs with longer units: "jisx0212"
(every 0x8F xx yy of EUC-JP), "four" (GB18030 four-byte sequences: every valid one, plus every
third and fourth byte around the valid ranges), "makeup" (EUC-KR make-up sequences), and
"tail-N" (a unit cut short by the end of the input).
"""

import ast
import codecs
import encodings.aliases
import json
import os
import pkgutil
import sys
import warnings


def record(errors):
    def handler(exc):
        errors.append([exc.start, exc.end, exc.reason, str(exc)])
        return ("\ufffd", exc.end)
    return handler


def answer(codec, data):
    errors = []
    codecs.register_error("trifecta_probe", record(errors))
    text = data.decode(codec, "trifecta_probe")
    return {"text": text, "errors": errors}


def probe_sets(codec):
    sets = {"bytes": b"".join(bytes([b]) + b"\n" for b in range(256))}
    multi = codec in ("gb2312", "gbk", "gb18030", "big5", "cp950", "shift_jis", "cp932",
                      "euc_jp", "euc_kr", "cp949", "utf_8", "utf_8_sig")
    if multi:
        sets["pairs"] = b"".join(bytes([a, b]) + b"\n" for a in range(0x80, 0x100)
                                 for b in range(256))
    if codec in ("utf_8", "utf_8_sig"):
        sets["three"] = b"".join(bytes([a, b, c]) + b"\n" for a in range(0xE0, 0xF5)
                                 for b in range(0x70, 0xC8, 3) for c in range(0x70, 0xC8, 5))
        sets["four-utf8"] = b"".join(bytes([0xF0 + a, b, c, d]) + b"\n" for a in range(6)
                                     for b in range(0x78, 0xC8, 7) for c in (0x7F, 0x80, 0xBF, 0xC0)
                                     for d in (0x41, 0x80, 0xBF, 0xC0))
    if codec == "euc_jp":
        sets["jisx0212"] = b"".join(bytes([0x8F, a, b]) + b"\n" for a in range(256)
                                    for b in range(256))
    if codec == "gb18030":
        valid = bytearray()
        for a in range(0x81, 0xFF):
            for b in range(0x30, 0x3A):
                for c in range(0x81, 0x100):
                    for d in range(0x30, 0x3A):
                        valid += bytes([a, b, c, d])
        sets["four"] = bytes(valid) + b"\n"
        edges = bytearray()
        for a in (0x80, 0x81, 0x84, 0x85, 0x8F, 0x90, 0xE3, 0xE4, 0xFE, 0xFF):
            for b in (0x30, 0x39):
                for c in range(256):
                    for d in (0x00, 0x0A, 0x2F, 0x30, 0x39, 0x3A, 0x81):
                        edges += bytes([a, b, c, d]) + b"\n"
                for d in range(256):
                    for c in (0x30, 0x80, 0x81, 0xFE, 0xFF):
                        edges += bytes([a, b, c, d]) + b"\n"
        sets["four-edges"] = bytes(edges)
    if codec == "euc_kr":
        jamo = list(range(0xA0, 0xC0)) + [0xD3, 0xD4, 0xD5, 0x41]
        vowels = list(range(0xBE, 0xD5)) + [0xA1, 0x41]
        sets["makeup"] = b"".join(
            bytes([0xA4, 0xD4, 0xA4, x, 0xA4, y, 0xA4, z]) + b"\n"
            for x in jamo for y in vowels for z in jamo) + b"".join(
            bytes([0xA4, 0xD4, p, 0xA1, q, 0xBF, r, 0xD4]) + b"\n"
            for p in (0xA3, 0xA4) for q in (0xA4, 0xA5) for r in (0xA4, 0x0A))
    if multi:
        # Units cut short by the end of the input ("incomplete multibyte sequence").
        for i, tail in enumerate([b"\x81", b"\x8f", b"\x8f\xa1", b"\x81\x30", b"\x81\x30\x81",
                                  b"\xa4\xd4", b"\xa4\xd4\xa4\xa1\xa4\xbf\xa4", b"\xe0\xa0",
                                  b"\xf0\x9f\x98"]):
            sets["tail-%d" % i] = b"x = 1\n" + tail
    return sets


def decode_main(outdir, names):
    for codec in names:
        for name, data in probe_sets(codec).items():
            base = os.path.join(outdir, "%s.%s" % (codec, name))
            with open(base + ".bin", "wb") as f:
                f.write(data)
            with open(base + ".json", "w", encoding="utf-8") as f:
                json.dump(answer(codec, data), f, ensure_ascii=False)


def spellings():
    """Many spellings of every alias and codec module name, plus names that are no codec."""
    base = set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values())
    base |= {m.name for m in pkgutil.iter_modules(encodings.__path__)}
    out = set()
    for n in sorted(base):
        out |= {n, n.upper(), n.replace("_", "-"), n.replace("_", ""), n.replace("_", "."),
                "-" + n, n + "--", n.replace("_", "-_-"), n.title().replace("_", "-")}
    out |= {"foo", "x-unknown", "utf-8-sig", "utf8-sig", "utf.8", "UTF_8", "Latin-1-Unix",
            "latin-1-", "iso-8859-1-x", "iso_latin_1_x", "utf-8x", "utf8x", "U8", "mbcs",
            "dbcs", "ansi", "oem", "aliases", "x.utf8", "1", "0", "_", "..", "cp65001"}
    return sorted(s for s in out if s and all(c.isalnum() or c in "-_." for c in s))


# String literals whose bytes decode differently in nearly every codec, so that a name looked
# up as the wrong codec shows: the upper half of a single-byte page, and two-byte sequences that
# tell the East Asian codecs apart (0x8160 is U+301C in shift_jis, U+FF5E in cp932, ...).
PROBES = [bytes(b for b in range(0xA0, 0x100) if b not in b"'\\"),
          b"\x81\x60\xa1\xa4\xa1\xaa\xc6\xa1\xa4\xa1\x8e\xa1\xa8\x44\xf9\xd6"]


def names_main():
    warnings.simplefilter("ignore")
    sys.stdout.reconfigure(encoding="utf-8")
    for name in spellings():
        for probe in PROBES:
            source = ("# coding: %s\nx = '" % name).encode("ascii") + probe + b"'\n"
            value = None
            try:
                value = ast.parse(source).body[0].value.value
                outcome = "ok"
            except SyntaxError as e:
                outcome = e.msg
            except (ValueError, UnicodeError) as e:
                outcome = "%s: %s" % (type(e).__name__, e)
            print(json.dumps({"name": name, "source": source.hex(), "outcome": outcome,
                              "value": value}, ensure_ascii=False))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "decode":
        decode_main(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 2 and sys.argv[1] == "names":
        names_main()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
