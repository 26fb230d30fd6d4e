package sinks

// Column families (changefeed option split_column_families, with
// schemas.WithSplitColumnFamilies): a model.Table with Family set is one
// column family of the source table Source. Writers that support it mirror
// each family as a table of its own (named, like any table, after
// "<table>.<family>") and present the source table as views over its
// families (docs/DECODING.md, "Column families").
const (
	// FamiliesTable records the column families seen of each source table:
	// source_table, family, family_table (the family's source name,
	// "<table>.<family>") and recorded_at; primary key (source_table,
	// family).
	FamiliesTable = "highwater_families"
	// FamilyColumn names, in a source table's changelog view, the family
	// whose version a row is.
	FamilyColumn = "_hw_family"
)
