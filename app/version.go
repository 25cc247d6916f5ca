package app

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Version is promemoria's version, one token (it goes in User-Agent
// headers): set at build time with -ldflags "-X
// github.com/promemoria/promemoria/app.Version=v1.2.3", or else taken from
// the build information the go command records: the module's version
// (go install …@v1.2.3), or "devel" with the VCS revision of a build from
// a checkout (go build, go run), marked dirty when it had local changes.
var Version string

func init() {
	if Version == "" {
		Version = buildVersion()
	}
}

// buildVersion derives the version from runtime/debug.ReadBuildInfo.
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	v := "devel"
	if rev != "" {
		v += "-" + rev[:min(12, len(rev))]
	}
	if dirty {
		v += "-dirty"
	}
	return v
}

// VersionLine is what promemoria --version prints: the version, then the
// VCS revision and time and the Go version when the build recorded them.
func VersionLine() string {
	var extra []string
	if info, ok := debug.ReadBuildInfo(); ok {
		var rev, at string
		modified := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" {
			c := "commit " + rev
			if modified {
				c += " with local changes"
			}
			extra = append(extra, c)
		}
		if at != "" {
			extra = append(extra, at)
		}
		extra = append(extra, info.GoVersion)
	}
	if len(extra) == 0 {
		return "promemoria " + Version
	}
	return fmt.Sprintf("promemoria %s (%s)", Version, strings.Join(extra, ", "))
}
