package tender

import (
	"time"
	_ "time/tzdata" // Europe/Rome on machines without a zone database
)

// rome is the time zone of Italian dates.
var rome = func() *time.Location {
	l, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		panic("tender: Europe/Rome: " + err.Error())
	}
	return l
}()
