package worker

import "testing"

func TestAtLeast(t *testing.T) {
	for _, tt := range []struct {
		v    string
		want bool
	}{
		{"2.12.0", true}, {"2.12.1", true}, {"2.15.2", true}, {"3.0.0", true}, {"2.14.0-beta.1", true},
		{"2.11.9", false}, {"2.10.22", false}, {"1.99.99", false}, {"2.12.0-RC.1", true},
	} {
		if got := atLeast(tt.v, MinServerVersion); got != tt.want {
			t.Errorf("atLeast(%q, %q) = %v, want %v", tt.v, MinServerVersion, got, tt.want)
		}
	}
}
