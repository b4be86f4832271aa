package drain_test

// errConnReset: Plan 9 reports a reset as an error string of its own.
var errConnReset error
