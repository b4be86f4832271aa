module github.com/b93f8b21/reuseport

go 1.26.0

require golang.org/x/sys v0.49.0
