package rolling

// signalled is always false on plan9, whose processes end by notes rather
// than signals: every exit there counts as a crash. It exists so that the
// package builds on every target.
func signalled(error) bool { return false }
