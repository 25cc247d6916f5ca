package tender

import "github.com/promemoria/promemoria/calendar"

// rome is the time zone of Italian dates.
var rome = calendar.Rome()
