package steer

// Installed exposes Group.installed to the tests of package steer_test.
func Installed(g *Group, t Table) bool { return g.installed(t) }
