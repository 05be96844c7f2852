package sqs

import (
	"testing"
)

func strAttr(typ, v string) messageAttr { return messageAttr{DataType: typ, StringValue: &v} }

// The expected sums are those AWS answers (published with the npm package
// aws-md5-of-message-attributes, which checks them against SQS).
func TestMD5OfAttributes(t *testing.T) {
	t.Parallel()
	bin := messageAttr{DataType: "Binary", BinaryValue: []byte("Hello binary world!")}
	for _, c := range []struct {
		attrs map[string]messageAttr
		want  string
	}{
		{map[string]messageAttr{"attribName1": strAttr("String", "attribValue 1")}, "19e27d4e946b072f3f58da80d94fd778"},
		{map[string]messageAttr{"customNumberTypeAttrib": strAttr("Number.float", "4563442423554324324264524243.32543234")}, "9fe1b90bbd9965bdf77bac517c7d2495"},
		{map[string]messageAttr{"binaryAttribute": bin}, "31a92b15d92f8db860eda32aceb656c3"},
		{map[string]messageAttr{
			"attribName1":            strAttr("String", "attribValue 1"),
			"customNumberTypeAttrib": strAttr("Number.float", "4563442423554324324264524243.32543234"),
			"binaryAttribute":        bin,
		}, "c932db14a896c663f83c260297d594ff"},
		{nil, ""},
	} {
		if got := md5OfAttributes(c.attrs); got != c.want {
			t.Errorf("md5OfAttributes(%v) = %s, want %s", c.attrs, got, c.want)
		}
	}
	if got := md5Hex("hello"); got != "5d41402abc4b2a76b9719d911017c592" {
		t.Errorf("md5Hex = %s", got)
	}
}
