#!/usr/bin/env python3
"""The encodings corpus: Python modules in every source encoding trifecta claims (and some it
does not), with Python's `ast` verdict on each.

Usage: encodings_corpus.py OUTDIR

Writes OUTDIR/<name>.py files and OUTDIR/expected.jsonl, one JSON object per file:

    {"file": "<name>.py", "case": "<what it tests>", "codec": "<module the cookie names>" | null,
     "python": "ok" | "<SyntaxError message>", "symbols": [...] (when "ok"),
     "error_line": N (when Python refused the module before parsing)}

"symbols" has trifecta's JSON shape (see ast_symbols.py). "error_line" is where trifecta must
report an encoding error: CPython itself says line 0, so it is derived from what CPython does
say: the byte position in a decoding error's message (the line holding that byte), or else the
line of the coding cookie.

Each valid module declares its codec in a cookie (spelled in several ways), and holds non-ASCII
identifiers (class, method, function, async and nested names, some NFKC-normalised by Python),
strings and comments drawn from characters that codec encodes; single-byte codecs put every
printable character they define into a string. Then: undecodable bytes in a string, a comment
and an identifier; codecs Python does not know or that are no text encodings; a BOM with a
foreign cookie; CRLF, CR and missing final newlines; cookies on line 2.
"""

import ast
import codecs
import encodings
import json
import os
import pkgutil
import re
import sys
import unicodedata
import warnings

DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)

# The codecs trifecta decodes, by `encodings` module; single-byte ones are found below.
MULTI = ["utf_8", "ascii", "latin_1", "gb2312", "gbk", "gb18030", "big5", "cp950", "shift_jis",
         "cp932", "euc_jp", "euc_kr", "cp949"]
# Text codecs trifecta reports as unsupported.
UNSUPPORTED = ["utf_16", "utf_32", "utf_7", "iso2022_jp", "iso2022_kr", "hz", "johab",
               "big5hkscs", "shift_jis_2004", "euc_jis_2004", "punycode", "idna",
               "unicode_escape", "raw_unicode_escape"]

# Cookie spellings that exercise CPython's name folding and aliases.
SPELLINGS = {
    "latin_1": ["latin-1", "ISO_8859_1", "l1", "iso8859.1", "latin-1-unix"],
    "utf_8": ["utf8", "UTF_8", "u8", "cp65001", "utf-8"],
    "cp1252": ["windows-1252", "CP1252"],
    "cp1251": ["windows_1251"],
    "koi8_r": ["KOI8-R"],
    "gb2312": ["GB2312", "euc-cn", "chinese"],
    "gbk": ["GBK", "cp936", "ms936"],
    "gb18030": ["gb18030-2000"],
    "big5": ["big5-tw", "csbig5"],
    "shift_jis": ["Shift_JIS", "sjis", "s_jis"],
    "cp932": ["ms932", "mskanji", "ms-kanji"],
    "euc_jp": ["EUC-JP", "ujis"],
    "euc_kr": ["euc-kr", "ksc5601", "korean"],
    "cp949": ["uhc", "ms949"],
    "iso8859_15": ["ISO-8859-15", "latin-9", "l9", "latin9"],
    "iso8859_2": ["latin2", "iso-8859-2"],
    "mac_roman": ["macroman", "macintosh"],
    "cp437": ["IBM437", "437"],
    "cp850": ["ibm850", "850"],
    "tis_620": ["tis-620", "tis620"],
}

# Candidate characters for identifiers, strings and comments; each codec uses those it encodes.
POOL = ("éàüßøñçÅÆŒœŠšŽžŸĄąĘęŁłŃńŚśŹźŻżŐőŰűȘșȚțĞğİıŞşĀāĒēĪīŪūÞþÐð"
        "αβγδλμπΩΣψАБВдждомфыэюяЁёЇїЄєҐґЎўЪъ"
        "אבגדהשת" "بتثجحخ" "กขคงจฉ" "ẠạĂăƠơƯư"
        "漢字表示中文日本語能力ソ十予構申貼兔曾韓國語한국어가나다ひらがなカタカナｱｲｳ"
        "ＡＢＣｆｕｌ")
SYMBOLS = "€‚ƒ„…†‡ˆ‰‹•–—™›¢£¥§©®°±µ¶·¼½¾×÷¤¦¨ªº¬¯²³¹─│┌┐└┘├┤░▒▓■□●○◎★☆※〒→←↑↓"


def encodable(c, codec):
    try:
        return c.encode(codec).decode(codec) == c
    except (UnicodeError, LookupError):
        return False


def ident_chars(codec, n=8):
    chars = [c for c in POOL if ("a" + c).isidentifier() and encodable(c, codec)]
    if len(chars) <= n:
        return chars
    step = len(chars) / n
    return [chars[int(i * step)] for i in range(n)]


def printable(c):
    return unicodedata.category(c) not in ("Cc", "Cs", "Zl", "Zp", "Co", "Cn") \
        and c not in "\\'\"\x85"


def string_chars(codec):
    """Characters for a string literal: every printable one a single-byte codec defines, else a
    spread of the codec's characters (for CJK codecs a sample of its two-byte table)."""
    chars = []
    try:
        table = __import__("encodings." + codec, fromlist=["x"]).decoding_table
        chars = [c for c in table[0x80:] if c != "\ufffe" and printable(c)]
    except (ImportError, AttributeError):
        pass
    if not chars and codec in MULTI[3:]:
        seen = []
        for lead in range(0x81, 0xFF, 3):
            for trail in range(0x40, 0xFF, 11):
                try:
                    c = bytes([lead, trail]).decode(codec)
                except UnicodeDecodeError:
                    continue
                if len(c) == 1 and printable(c):
                    seen.append(c)
        chars = seen[:400]
    chars += [c for c in POOL + SYMBOLS if encodable(c, codec) and printable(c)]
    return "".join(dict.fromkeys(chars))


def module_text(cookie, codec, shebang=False):
    ids = ident_chars(codec)
    word = "".join(ids[:4]) or "plain"
    def name(prefix, i):
        return prefix + "".join(ids[i:i + 3]) if ids else prefix
    full = "".join(c for c in "ＡＢｆ" if encodable(c, codec))
    s = string_chars(codec)
    head = "#!/usr/bin/env python3\n" if shebang else ""
    return head + (
        "# -*- coding: %(cookie)s -*-\n"
        '"""Module %(word)s."""\n'
        "# %(s)s\n"
        "\n"
        "VALUE = '%(s)s'\n"
        "%(v)s = 1\n"
        "\n"
        "\n"
        "def %(f)s(a, b='%(word)s'):\n"
        "    # %(word)s\n"
        "    return a\n"
        "\n"
        "\n"
        "@staticmethod\n"
        "class %(c)s:\n"
        '    """%(s)s"""\n'
        "\n"
        "    def %(m)s(self):\n"
        "        return '%(word)s'\n"
        "\n"
        "    async def %(a)s(self):\n"
        "        pass\n"
        "\n"
        "    class %(n)s:\n"
        "        def inner(self): ...\n"
        "\n"
        "\n"
        "async def %(af)s():\n"
        "    x = '%(word)s'  # %(word)s\n"
        "\n"
        "\n"
        "def x%(full)s(): pass\n"
    ) % {"cookie": cookie, "word": word, "s": s, "v": name("v", 0), "f": name("f", 1),
         "c": name("C", 2), "m": name("m", 3), "a": name("a", 4), "n": name("N", 5),
         "af": name("af", 0), "full": full}


def symbol(node):
    out = {"kind": "class" if isinstance(node, ast.ClassDef) else "function",
           "name": node.name, "line": node.lineno, "end_line": node.end_lineno}
    if isinstance(node, ast.AsyncFunctionDef):
        out["async"] = True
    if isinstance(node, ast.ClassDef):
        out["members"] = [symbol(m) for m in node.body if isinstance(m, DEFS)]
    return out


def translated(raw):
    """The buffer CPython decodes: newlines translated, BOM stripped, final newline added."""
    text = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if text.startswith(codecs.BOM_UTF8):
        text = text[3:]
    if not text.endswith(b"\n"):
        text += b"\n"
    return text


def cookie_line(raw):
    for i, line in enumerate(translated(raw).split(b"\n")[:2]):
        if re.match(rb"^[ \t\f]*#.*?coding[:=]", line):
            return i + 1
    return None


def verdict(raw, codec):
    """Python's verdict, and where trifecta must report an encoding error."""
    try:
        tree = ast.parse(raw)
    except SyntaxError as e:
        out = {"python": e.msg}
        if e.lineno == 0:  # refused before parsing: decoding or codec lookup
            m = re.search(r"can't decode bytes? (?:0x[0-9a-f]{2} )?in position (\d+)", e.msg)
            if m:
                prefix = translated(raw)[:int(m.group(1))]
                out["error_line"] = prefix.decode(codec).count("\n") + 1
            else:
                out["error_line"] = cookie_line(raw)
        return out
    return {"python": "ok", "symbols": [symbol(n) for n in tree.body if isinstance(n, DEFS)]}


def single_byte_codecs():
    out = []
    for info in pkgutil.iter_modules(encodings.__path__):
        try:
            mod = __import__("encodings." + info.name, fromlist=["x"])
        except ImportError:
            continue
        table = getattr(mod, "decoding_table", None)
        if isinstance(table, str) and len(table) == 256:
            out.append(info.name)
    return sorted(out)


def bad_bytes(codec):
    """A byte sequence the codec cannot decode before a newline (None if there is none)."""
    for cand in [b"\x80", b"\x81", b"\xff", b"\xa0", b"\xe9", b"\x8f\xa1"] + \
            [bytes([b]) for b in range(0x80, 0x100)]:
        try:
            (cand + b"\n").decode(codec)
        except UnicodeDecodeError:
            return cand
    return None


def encode(text, codec):
    """`text` as an editor saving in `codec` writes it: ASCII as ASCII (a few Mac codecs would
    otherwise pick right-to-left duplicates of ASCII punctuation), the rest with the codec."""
    return b"".join(c.encode("ascii") if c < "\x80" else c.encode(codec) for c in text)


def ascii_compatible(codec):
    try:
        return bytes(range(128)).decode(codec) == "".join(map(chr, range(128)))
    except UnicodeError:
        return False


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    warnings.simplefilter("ignore")
    cases = []  # (file stem, case, codec, raw bytes)

    def add(stem, case, codec, raw):
        cases.append((stem, case, codec, raw))

    compatible = []
    for codec in MULTI + single_byte_codecs():
        if codec in ("ascii",):
            continue
        cookie = SPELLINGS.get(codec, [codec.replace("_", "-")])[0]
        if not ascii_compatible(codec):
            # Not ASCII-compatible (EBCDIC, ...): the cookie line itself decodes to something
            # else. Python refuses such a module; the case checks we refuse it too.
            add("ebcdic_" + codec, "not ASCII-compatible", codec,
                ("# coding: %s\nx = 1\n" % codec).encode("ascii"))
            continue
        compatible.append(codec)
        add("ok_" + codec, "valid module", codec, encode(module_text(cookie, codec), codec))
        for i, spelling in enumerate(SPELLINGS.get(codec, [])[1:]):
            add("spell%d_%s" % (i, codec), "cookie spelling %s" % spelling, codec,
                encode(module_text(spelling, codec, shebang=(i % 2 == 0)), codec))
    add("ok_ascii", "valid module", "ascii", module_text("ascii", "ascii").encode("ascii"))

    # Undecodable bytes: in a string, a comment, an identifier, and at the very end.
    for codec in compatible + ["ascii"]:
        bad = bad_bytes(codec)
        if bad is None:
            continue
        cookie = SPELLINGS.get(codec, [codec])[0]
        head = ("# coding: %s\nimport os\n\n\ndef before(): pass\n" % cookie).encode("ascii")
        add("bad_string_" + codec, "undecodable byte in a string", codec,
            head + b"x = '" + bad + b"'\n\ndef after(): pass\n")
        add("bad_comment_" + codec, "undecodable byte in a comment", codec,
            head + b"\n\n# " + bad + b"\ndef after(): pass\n")
        add("bad_ident_" + codec, "undecodable byte in an identifier", codec,
            head + b"def f" + bad + b"(): pass\n")
        add("bad_crlf_" + codec, "undecodable byte, CRLF line ends", codec,
            head.replace(b"\n", b"\r\n") + b"\r\n\r\nx = '" + bad + b"'\r\n")
        add("bad_eof_" + codec, "undecodable byte at the end, no final newline", codec,
            head + b"x = 1\n" + bad)
    for stem, data in [("gb18030_cut", b"x = 1\n\x81\x30"), ("gb18030_cut3", b"\x81\x30\x81"),
                       ("euc_kr_cut", b"x = 1\n\xa4\xd4\xa4\xa1"),
                       ("euc_jp_cut", b"x = 1\n\x8f\xa1")]:
        codec = stem.rsplit("_", 1)[0]
        add("bad_" + stem, "unit cut short by the end of the file", codec,
            b"# coding: %s\n" % codec.encode() + data)

    # Line ends and placement.
    add("crlf_gbk", "CRLF line ends", "gbk",
        encode(module_text("gbk", "gbk"), "gbk").replace(b"\n", b"\r\n"))
    add("cr_cp1252", "lone CR line ends", "cp1252",
        encode(module_text("cp1252", "cp1252"), "cp1252").replace(b"\n", b"\r"))
    add("noeol_koi8_r", "no final newline", "koi8_r",
        encode(module_text("koi8-r", "koi8_r"), "koi8_r").rstrip(b"\n"))
    add("line2_euc_jp", "cookie on line 2", "euc_jp",
        encode(module_text("euc-jp", "euc_jp", shebang=True), "euc_jp"))
    add("line3_cp1251", "cookie on line 3 is ignored (UTF-8 then)", None,
        b"#!/usr/bin/env python3\n#\n# coding: cp1251\ndef \xe4\xee\xec(): pass\n")

    # Codecs Python refuses, and the BOM rule.
    for i, (name, body) in enumerate([
            ("foo", b"def f(): pass\n"), ("x-user-defined", b"def f(): pass\n"),
            ("utf8-sig", b"def f(): pass\n"), ("gb-2312", b"def f(): pass\n"),
            ("mbcs", b"def f(): pass\n"), ("hex", b"def f(): pass\n"),
            ("rot13", b"def f(): pass\n"), ("base64", b"def f(): pass\n"),
            ("undefined", b"def f(): pass\n"), ("Undefined", b"def \xe9(): pass\n")]):
        add("refused%d" % i, "codec %s" % name, None,
            ("#!/usr/bin/python\n# coding: %s\n" % name).encode("ascii") + body)
    add("bom_latin1", "BOM with a latin-1 cookie", None,
        codecs.BOM_UTF8 + b"# coding: latin-1\ndef f(): pass\n")
    add("bom_utf8", "BOM with a utf-8 cookie", "utf_8",
        codecs.BOM_UTF8 + "# coding: utf-8\ndef é(): pass\n".encode())

    # Codecs Python decodes and trifecta does not.
    for codec in UNSUPPORTED:
        add("unsupported_" + codec, "unsupported codec", codec,
            ("# coding: %s\ndef f(): pass\n" % codec).encode("ascii"))

    with open(os.path.join(out, "expected.jsonl"), "w", encoding="utf-8") as f:
        for stem, case, codec, raw in cases:
            path = os.path.join(out, stem + ".py")
            with open(path, "wb") as py:
                py.write(raw)
            record = {"file": stem + ".py", "case": case, "codec": codec}
            record.update(verdict(raw, codec))
            if codec in UNSUPPORTED:
                record["unsupported"] = True
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
