package steer

// installedForTest exposes Group.installed to the tests of package steer_test.
func installedForTest(g *Group, t slotTable) bool { return g.installed(t) }
