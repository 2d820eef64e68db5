"""Java serialization of the two objects ProActive's Java client reads from a result.

`TaskResultData.serializedValue` is the only place the Java client takes a result's
value from (TaskResultImpl.value()): base64 of a Java-serialized object; for a native or
bash task ProActive stores the exit code, a `java.lang.Integer`. `serializedException`
makes `hadException()` true and is deserialized by `getException()`: a
`java.lang.Exception` carrying the failure's reason.

Both are fixed layouts (Java Object Serialization Stream Protocol, version 5), written
here byte for byte; the tests read them back with the JDK's `ObjectInputStream`. The
exception's bytes were produced once by the JDK from `new Exception(msg)` with an empty
stack trace; only the message string changes between instances.
"""

from __future__ import annotations

import base64
import struct

#: ObjectOutputStream's bytes for a java.lang.Integer, up to its 4-byte value.
_INTEGER_PREFIX = bytes.fromhex(
    "aced0005"  # magic, version
    "7372"  # TC_OBJECT, TC_CLASSDESC
    "00116a6176612e6c616e672e496e7465676572"  # "java.lang.Integer"
    "12e2a0a4f7818738"  # serialVersionUID
    "02"  # SC_SERIALIZABLE
    "0001" "49" "000576616c7565"  # one field: int value
    "78"  # TC_ENDBLOCKDATA
    "72" "00106a6176612e6c616e672e4e756d626572"  # superclass java.lang.Number
    "86ac951d0b94e08b" "02" "0000" "78"
    "70"  # TC_NULL: no further superclass
)

#: A serialized `java.lang.Exception` up to its message (TC_STRING and length follow) ...
_EXCEPTION_HEAD = bytes.fromhex(
    "aced0005737200136a6176612e6c616e672e457863657074696f6ed0fd1f3e1a3b1cc4020000787200136a"
    "6176612e6c616e672e5468726f7761626c65d5c635273977b8cb0300044c000563617573657400154c6a61"
    "76612f6c616e672f5468726f7761626c653b4c000d64657461696c4d6573736167657400124c6a6176612f"
    "6c616e672f537472696e673b5b000a737461636b547261636574001e5b4c6a6176612f6c616e672f537461"
    "636b5472616365456c656d656e743b4c001473757070726573736564457863657074696f6e737400104c6a"
    "6176612f7574696c2f4c6973743b787071007e0006"
)
#: ... and after it: an empty StackTraceElement[], Collections.EMPTY_LIST, end of block.
_EXCEPTION_TAIL = bytes.fromhex(
    "7572001e5b4c6a6176612e6c616e672e537461636b5472616365456c656d656e743b02462a3c3cfd2239"
    "0200007870000000007372001f6a6176612e7574696c2e436f6c6c656374696f6e7324456d7074794c69"
    "7374"
    "7ab817b43ca79ede020000787078"
)


def integer(value: int) -> bytes:
    """`new Integer(value)` as ObjectOutputStream writes it."""
    return _INTEGER_PREFIX + struct.pack(">i", value)


def modified_utf8(text: str) -> bytes:
    """Java's modified UTF-8 (DataOutput.writeUTF): NUL as C0 80, non-BMP characters as
    two 3-byte surrogates."""
    out = bytearray()
    for unit in struct.unpack(f"<{len(text.encode('utf-16-le')) // 2}H", text.encode("utf-16-le")):
        if 0 < unit < 0x80:
            out.append(unit)
        elif unit < 0x800:
            out += bytes((0xC0 | (unit >> 6), 0x80 | (unit & 0x3F)))
        else:
            out += bytes((0xE0 | (unit >> 12), 0x80 | ((unit >> 6) & 0x3F), 0x80 | (unit & 0x3F)))
    return bytes(out)


def exception(message: str) -> bytes:
    """`new Exception(message)` (empty stack trace) as ObjectOutputStream writes it."""
    data = modified_utf8(message)
    if len(data) > 0xFFFF:
        data = modified_utf8(message[: 0xFFFF // 3])  # TC_STRING holds 64 KiB at most
    return _EXCEPTION_HEAD + b"\x74" + struct.pack(">H", len(data)) + data + _EXCEPTION_TAIL


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
