package sinks

// AsOfSuffix is appended to a mirror table's name to name its time-travel
// function: with a changelog, <mirror>_asof(hlc) returns the source table
// as of any HLC back to the start of the feed (the newest version of each
// key at or below hlc, deletes excluded, with the mirror's columns). The
// table rule (TableRule) reserves the suffix like ChangesSuffix: the
// function's name fits wherever the mirror's changelog does, and no source
// table is given a name that another table's function holds.
const AsOfSuffix = "_asof"

// AsOfName returns the name of the time-travel function of the mirror
// table named mirror.
func AsOfName(mirror string) string { return mirror + AsOfSuffix }
