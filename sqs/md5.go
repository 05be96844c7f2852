package sqs

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"sort"
)

// md5Hex is the hex MD5 of s: MD5OfMessageBody.
func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// md5OfAttributes is MD5OfMessageAttributes (and MD5OfMessageSystemAttributes) as AWS
// computes it and the SDKs check it: over the attributes sorted by name, each as its name,
// its data type (both length-prefixed, 4 bytes big-endian), a transport byte (1 string, 2
// binary, 3 string list, 4 binary list) and its value(s), length-prefixed. "" when there are
// none.
func md5OfAttributes(attrs map[string]messageAttr) string {
	if len(attrs) == 0 {
		return ""
	}
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	h := md5.New()
	for _, n := range names {
		a := attrs[n]
		putLen(h, []byte(n))
		putLen(h, []byte(a.DataType))
		switch {
		case a.StringValue != nil:
			h.Write([]byte{1})
			putLen(h, []byte(*a.StringValue))
		case a.BinaryValue != nil:
			h.Write([]byte{2})
			putLen(h, a.BinaryValue)
		case len(a.StringListValues) > 0:
			h.Write([]byte{3})
			for _, s := range a.StringListValues {
				putLen(h, []byte(s))
			}
		case len(a.BinaryListValues) > 0:
			h.Write([]byte{4})
			for _, b := range a.BinaryListValues {
				putLen(h, b)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func putLen(h hash.Hash, b []byte) {
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(b)))
	h.Write(l[:])
	h.Write(b)
}
