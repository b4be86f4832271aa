//go:build race

package servercmdtest

const raceEnabled = true
