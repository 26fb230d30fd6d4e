package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrUnknownSchema is wrapped by errors for a schema id that the registry
// does not know (HTTP 404). It is permanent: ids are never reused.
var ErrUnknownSchema = errors.New("unknown schema id")

// ErrSchemaUnavailable is wrapped by decode errors when the schema source
// could not give a schema for a reason other than not knowing its id (the
// registry refused the credentials, is down past the caller's deadline, ...).
// The record is not at fault: it may decode once the registry answers, so
// such an error must never condemn the record (dead-letter or skip it).
var ErrSchemaUnavailable = errors.New("schema unavailable")

// ErrNoUpdated is wrapped by errors for changefeeds whose messages carry no
// `updated` timestamp (no `updated` option, or envelope=key_only). Without it
// rows cannot be ordered, so highwater refuses such feeds.
var ErrNoUpdated = errors.New("changefeed messages have no `updated` timestamp: create the changefeed WITH updated, resolved")

// ErrBadFrame is wrapped by errors for a Kafka key or value that is not in
// the Confluent wire format (too short, or a magic byte other than 0).
var ErrBadFrame = errors.New("not a Confluent Avro frame")

// DecodeError is the error for one Kafka record that could not be decoded.
// It names the record's place so that an operator can find it.
type DecodeError struct {
	Topic     string
	Partition int32
	Offset    int64
	// SchemaID is the writer schema id involved, or -1 when the frame did
	// not get as far as a schema id.
	SchemaID int
	Err      error
}

// Error renders e like "decode orders[3]@1042 (schema id 7): truncated value".
func (e *DecodeError) Error() string {
	where := "decode"
	if e.Topic != "" {
		where = fmt.Sprintf("decode %s[%d]@%d", e.Topic, e.Partition, e.Offset)
	}
	if e.SchemaID >= 0 {
		return fmt.Sprintf("%s (schema id %d): %v", where, e.SchemaID, e.Err)
	}
	return fmt.Sprintf("%s: %v", where, e.Err)
}

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }

// notAvroHint says which changefeed options give messages highwater reads:
// a message without the Confluent header is another format (format = json
// starts with '{', format = protobuf with a field tag such as 0x0a) or was
// written without a registry.
const notAvroHint = "not Confluent Avro: highwater reads only changefeeds created WITH format = avro, confluent_schema_registry = '...'; format = json, csv, parquet and protobuf are refused"

// FrameHeaderSize is the length of the Confluent wire-format header: the
// magic byte 0 and a 4-byte big-endian schema id.
const FrameHeaderSize = 5

// ParseFrame splits a Confluent-framed message into its schema id and Avro
// body. The body aliases b.
func ParseFrame(b []byte) (id int, body []byte, err error) {
	if len(b) < FrameHeaderSize {
		return -1, nil, fmt.Errorf("%w: %d bytes, shorter than the 5-byte header (%s)", ErrBadFrame, len(b), notAvroHint)
	}
	if b[0] != 0 {
		return -1, nil, fmt.Errorf("%w: magic byte 0x%02x, want 0x00 (%s)", ErrBadFrame, b[0], notAvroHint)
	}
	return int(int32(binary.BigEndian.Uint32(b[1:5]))), b[5:], nil
}
