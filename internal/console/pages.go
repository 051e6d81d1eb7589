package console

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/drawbridge/drawbridge/internal/config"
	"github.com/drawbridge/drawbridge/internal/delivery"
	"github.com/drawbridge/drawbridge/internal/gateway"
	"github.com/drawbridge/drawbridge/internal/metrics"
)

const loginPath = "/console/login"

// page is what every template gets: the layout's fields and the page's
// own data.
type page struct {
	Title    string // the page's name; the <title> adds " · drawbridge console"
	Nav      string // the nav entry to mark current
	CSRF     string
	Operator string
	Auth     bool   // admin_auth is on: show the logout button
	Flash    string // the outcome of the last action
	Error    string
	Data     any
}

var pageNames = []string{"overview", "rejections", "deliveries", "delivery", "agents", "keys", "config", "login"}

func parsePages() map[string]*template.Template {
	funcs := template.FuncMap{
		"since": func(now, t time.Time) string { return ago(now.Sub(t)) },
		"utc":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
		"ms": func(d time.Duration) string {
			return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + " ms"
		},
		"bytes": byteSize,
		"total": byteTotal,
		"inc":   func(i int) int { return i + 1 },
		"list":  func(a ...any) []any { return a },
		"lastAttempt": func(d *delivery.Delivery) *delivery.Attempt {
			if len(d.Attempts) == 0 {
				return nil
			}
			return &d.Attempts[len(d.Attempts)-1]
		},
	}
	out := map[string]*template.Template{}
	for _, n := range pageNames {
		out[n] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+n+".html"))
	}
	return out
}

// render writes a page; an error inside a template after the status went
// out can only be logged.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.Operator = operator(r)
	p.Auth = c.d.Config().AdminAuth != nil
	p.CSRF = c.guard.csrf(p.Operator)
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, p); err != nil {
		c.d.Log.Error("console: render", "page", name, "error", err.Error())
		http.Error(w, "console: the page failed to render (see the log)", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// --- overview -----------------------------------------------------------

type overviewData struct {
	Window             string
	Windows            []string
	Seconds            int
	Billable, Rejected int64
	UpstreamFailed     int64
	Rate               float64 // requests per second over the last 10 full seconds
	Inflight           float64
	P50, P90, P99      time.Duration
	Samples            int
	Outcomes           []metrics.Outcome // columns: those seen in the window
	Rows               []routeRow
	Chart              chart
	NoRecent           bool
}

type routeRow struct {
	Route              string
	Counts             []int64 // per Outcomes column
	Billable, Rejected int64
	Total              int64
	Inflight           float64
}

var windows = map[string]int{"1m": 60, "5m": 300, "10m": 600}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	win := r.URL.Query().Get("window")
	if _, ok := windows[win]; !ok {
		win = "5m"
	}
	now := c.d.Now()
	d := overviewData{Window: win, Windows: []string{"1m", "5m", "10m"}, Seconds: windows[win], NoRecent: c.recent == nil}
	inflight := map[string]float64{}
	if c.d.Metrics != nil {
		inflight = gaugeByLabel(c.d.Metrics, "drawbridge_inflight", "route")
		for _, v := range inflight {
			d.Inflight += v
		}
	}
	if c.recent != nil {
		s := c.recent.Snapshot(now, d.Seconds)
		seen := map[metrics.Outcome]bool{}
		for _, m := range s.Cells {
			for o := range m {
				seen[o] = true
			}
		}
		for _, o := range metrics.Outcomes {
			if seen[o] {
				d.Outcomes = append(d.Outcomes, o)
			}
		}
		for route, m := range s.Cells {
			row := routeRow{Route: route, Inflight: inflight[route]}
			for _, o := range d.Outcomes {
				n := m[o]
				row.Counts = append(row.Counts, n)
				row.Total += n
				switch {
				case o.Billable():
					row.Billable += n
				case rejected(o):
					row.Rejected += n
				}
			}
			d.Billable += row.Billable
			d.Rejected += row.Rejected
			d.Rows = append(d.Rows, row)
		}
		slices.SortFunc(d.Rows, func(a, b routeRow) int {
			return cmp.Or(cmp.Compare(b.Total, a.Total), cmp.Compare(a.Route, b.Route))
		})
		var last10 int64
		for i, p := range s.Series {
			d.UpstreamFailed += p.Upstream
			// The current second is still filling: the rate is over the
			// ten before it.
			if i >= len(s.Series)-11 && i < len(s.Series)-1 {
				last10 += p.Billable + p.Rejected + p.Upstream
			}
		}
		d.Rate = float64(last10) / 10
		d.Samples = len(s.Latencies)
		d.P50, d.P90, d.P99 = Percentile(s.Latencies, .5), Percentile(s.Latencies, .9), Percentile(s.Latencies, .99)
		d.Chart = drawChart(s.Series)
	}
	c.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", Data: d})
}

// chart is the overview's time chart, drawn on the server as SVG rects:
// no script, no library, readable by a screen reader through its title
// and the table beside it.
type chart struct {
	Width, Height int
	Bars          []bar
	Max           int64
	From, To      string
	Summary       string
}

type bar struct {
	X, W                         float64
	BillY, BillH, RejY, RejH     float64
	UpY, UpH                     float64
	Label                        string
	Billable, Rejected, Upstream int64
}

// drawChart groups the series into at most 60 bars, each stacking
// billable, rejected and upstream-failed requests.
func drawChart(series []Point) chart {
	const width, height, maxBars = 600, 120, 60
	per := max(1, (len(series)+maxBars-1)/maxBars)
	var groups []Point
	for i := 0; i < len(series); i += per {
		g := Point{Unix: series[i].Unix}
		for _, p := range series[i:min(i+per, len(series))] {
			g.Billable += p.Billable
			g.Rejected += p.Rejected
			g.Upstream += p.Upstream
		}
		groups = append(groups, g)
	}
	ch := chart{Width: width, Height: height}
	for _, g := range groups {
		ch.Max = max(ch.Max, g.Billable+g.Rejected+g.Upstream)
	}
	scale := 0.0
	if ch.Max > 0 {
		scale = float64(height-4) / float64(ch.Max)
	}
	bw := float64(width) / float64(max(len(groups), 1))
	var tb, tr, tu int64
	for i, g := range groups {
		b := bar{X: round1(float64(i) * bw), W: round1(math.Max(bw-1, 1)), Billable: g.Billable, Rejected: g.Rejected, Upstream: g.Upstream,
			Label: fmt.Sprintf("%s: %d billable, %d rejected, %d upstream failures", time.Unix(g.Unix, 0).UTC().Format("15:04:05"), g.Billable, g.Rejected, g.Upstream)}
		y := float64(height)
		b.BillH = round1(float64(g.Billable) * scale)
		y -= b.BillH
		b.BillY = round1(y)
		b.RejH = round1(float64(g.Rejected) * scale)
		y -= b.RejH
		b.RejY = round1(y)
		b.UpH = round1(float64(g.Upstream) * scale)
		y -= b.UpH
		b.UpY = round1(y)
		ch.Bars = append(ch.Bars, b)
		tb, tr, tu = tb+g.Billable, tr+g.Rejected, tu+g.Upstream
	}
	if len(series) > 0 {
		ch.From = time.Unix(series[0].Unix, 0).UTC().Format("15:04:05")
		ch.To = time.Unix(series[len(series)-1].Unix, 0).UTC().Format("15:04:05")
	}
	ch.Summary = fmt.Sprintf("Requests per %s from %s to %s UTC: %d billable, %d rejected, %d upstream failures; the highest bar is %d requests.",
		ago(time.Duration(per)*time.Second), ch.From, ch.To, tb, tr, tu, ch.Max)
	return ch
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// gaugeByLabel sums a gauge family's values by one label.
func gaugeByLabel(m *metrics.Metrics, name, label string) map[string]float64 {
	out := map[string]float64{}
	mfs, err := m.Registry.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == label {
					out[lp.GetValue()] += mt.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}

// --- rejections ---------------------------------------------------------

type rejectionsData struct {
	Window                    string
	Windows                   []string
	Total                     int
	IPs, Keys, Guards, Routes []Count
	Outcomes                  []Count
	Latest                    []metrics.Event
	Now                       time.Time
	NoRecent                  bool
	RingSize                  int
}

func (c *Console) rejections(w http.ResponseWriter, r *http.Request) {
	win := r.URL.Query().Get("window")
	if _, ok := windows[win]; !ok {
		win = "10m"
	}
	d := rejectionsData{Window: win, Windows: []string{"1m", "5m", "10m"}, NoRecent: c.recent == nil, RingSize: RejectionRing, Now: c.d.Now()}
	if c.recent != nil {
		s := c.recent.Snapshot(d.Now, windows[win])
		es := s.Rejections
		d.Total = len(es)
		d.IPs = Top(es, 10, func(e metrics.Event) string { return addrName(e.Client) })
		d.Keys = Top(es, 10, func(e metrics.Event) string { return e.Key })
		d.Guards = Top(es, 10, func(e metrics.Event) string { return cmp.Or(e.Guard, "routing") })
		d.Routes = Top(es, 10, func(e metrics.Event) string { return e.Route })
		d.Outcomes = Top(es, 20, func(e metrics.Event) string { return string(e.Outcome) })
		d.Latest = es[:min(len(es), 50)]
	}
	c.render(w, r, http.StatusOK, "rejections", page{Title: "Rejections", Nav: "rejections", Data: d})
}

// --- deliveries ---------------------------------------------------------

// PageSize is how many deliveries a list page shows.
const PageSize = 50

// scanLimit bounds how many deliveries one list page reads to fill a page
// of matches (listDeliveries).
const scanLimit = 20 * PageSize

type deliveriesData struct {
	Available bool
	Counts    delivery.Counts
	State     string
	Route     string
	Target    string
	Since     string
	Until     string
	Routes    []string // async routes, for the filter and replay-dead
	Rows      []*delivery.Delivery
	Next      template.URL // the next (older) page; "" at the end
	Scanned   bool         // the target filter stopped at scanLimit before filling the page
	Redis     bool         // the redis driver: no delivered history
	ScanLimit int
	Now       time.Time
}

func asyncRoutes(cfg *config.Config) []string {
	var out []string
	for _, r := range cfg.Routes {
		if r.Delivery.Mode == config.DeliveryAsync {
			out = append(out, r.Path)
		}
	}
	return out
}

func (c *Console) deliveries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	now := c.d.Now()
	d := deliveriesData{Available: c.d.Deliveries != nil, State: q.Get("state"), Route: q.Get("route"),
		Target: strings.TrimSpace(q.Get("target")), Since: q.Get("since"), Until: q.Get("until"), Routes: asyncRoutes(c.d.Config()), Now: now,
		Redis: c.d.Config().State.Driver == "redis", ScanLimit: scanLimit}
	p := page{Title: "Deliveries", Nav: "deliveries", Flash: flash(q)}
	if !d.Available {
		p.Data = d
		c.render(w, r, http.StatusOK, "deliveries", p)
		return
	}
	status, err := c.listDeliveries(&d, q, now)
	if err != nil {
		p.Error = err.Error()
	}
	p.Data = d
	c.render(w, r, status, "deliveries", p)
}

// listDeliveries fills one page. The queue is read unfiltered but for
// since, a batch at a time, and filtered here: an unfiltered read costs
// the records it returns, where a filtered one (delivery.Queue.List) reads
// records until it has a page of matches, the whole queue for a filter
// that matches nothing. At most scanLimit records are read per page; the
// page then links to the next batch, as Hookdeck's event search does.
func (c *Console) listDeliveries(d *deliveriesData, q url.Values, now time.Time) (int, error) {
	ops := c.d.Deliveries
	var err error
	if d.Counts, err = ops.Counts(); err != nil {
		return http.StatusInternalServerError, err
	}
	var state delivery.State
	if d.State != "" {
		if state, err = delivery.ParseState(d.State); err != nil {
			return http.StatusBadRequest, err
		}
	}
	f := delivery.Filter{Before: q.Get("before"), Limit: 4 * PageSize}
	if f.Since, err = parseWhen(d.Since, now); err != nil {
		return http.StatusBadRequest, fmt.Errorf("since: %w", err)
	}
	until, err := parseWhen(d.Until, now)
	if err != nil {
		return http.StatusBadRequest, fmt.Errorf("until: %w", err)
	}
	match := func(x *delivery.Delivery) bool {
		return (state == "" || x.State == state) && (d.Route == "" || x.Route == d.Route) &&
			(until.IsZero() || x.AcceptedAt.Before(until)) && (d.Target == "" || strings.Contains(x.URL, d.Target))
	}
	for scanned := 0; ; {
		ds, err := ops.List(f)
		if err != nil {
			return http.StatusBadRequest, err
		}
		for _, x := range ds {
			scanned++
			f.Before = x.ID
			if !match(x) {
				continue
			}
			d.Rows = append(d.Rows, x)
			if len(d.Rows) == PageSize {
				break
			}
		}
		switch {
		case len(d.Rows) == PageSize:
			d.Next = nextQuery(q, f.Before)
			return http.StatusOK, nil
		case len(ds) < f.Limit:
			return http.StatusOK, nil // the oldest record was read
		case scanned >= scanLimit:
			d.Scanned = true
			d.Next = nextQuery(q, f.Before)
			return http.StatusOK, nil
		}
	}
}

// nextQuery is the link to the page after before. It is built from
// url.Values.Encode, so it is a safe URL as it stands (html/template
// would otherwise escape its '=' and '&' as data).
func nextQuery(q url.Values, before string) template.URL {
	n := url.Values{}
	for k, v := range q {
		if k != "before" && k != "done" && k != "n" && len(v) > 0 && v[0] != "" {
			n.Set(k, v[0])
		}
	}
	n.Set("before", before)
	return template.URL("/console/deliveries?" + n.Encode())
}

// parseWhen reads a filter's time: empty (none), a duration back from
// now ("90m", "24h", "7d"), RFC 3339, or a date and time in UTC as a
// datetime-local field sends it ("2026-12-07T21:30").
func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days >= 0 {
			return now.Add(-time.Duration(days) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use 90m, 24h, 7d, 2026-12-07T21:30 (UTC) or RFC 3339", s)
}

type deliveryData struct {
	D         *delivery.Delivery
	Header    []headerLine
	Text      string // the body when it is text (at most PreviewBytes)
	Binary    string // a hex dump of its start when it is not
	IsBinary  bool
	Truncated int // bytes not shown
	Now       time.Time
}

type headerLine struct{ Name, Value string }

// PreviewBytes is how much of a body the delivery page shows.
const PreviewBytes = 64 << 10

func (c *Console) deliveryPage(w http.ResponseWriter, r *http.Request) {
	p := page{Title: "Delivery", Nav: "deliveries", Flash: flash(r.URL.Query())}
	if c.d.Deliveries == nil {
		http.Redirect(w, r, "/console/deliveries", http.StatusSeeOther)
		return
	}
	x, err := c.d.Deliveries.Get(r.PathValue("id"))
	if err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, delivery.ErrNotFound):
			status = http.StatusNotFound
		case errors.Is(err, delivery.ErrInvalid):
			status = http.StatusBadRequest
		}
		p.Error = err.Error()
		p.Title = "Delivery not found"
		c.render(w, r, status, "delivery", p)
		return
	}
	p.Title = "Delivery " + x.ID
	d := deliveryData{D: x, Now: c.d.Now()}
	shown := delivery.Redact(x.Header)
	for _, k := range slices.Sorted(maps.Keys(shown)) {
		for _, v := range shown[k] {
			d.Header = append(d.Header, headerLine{k, v})
		}
	}
	d.Text, d.Binary, d.IsBinary, d.Truncated = preview(x.Body)
	p.Data = d
	c.render(w, r, http.StatusOK, "delivery", p)
}

// preview shows text as text and anything else as a hex dump of its
// first 512 bytes: a body is shown, never interpreted.
func preview(b []byte) (text, dump string, binary bool, truncated int) {
	show := b[:min(len(b), PreviewBytes)]
	// A cut may split a UTF-8 sequence: trim up to 3 bytes of it.
	for i := 0; i < 3 && len(show) < len(b) && len(show) > 0 && !utf8.Valid(show); i++ {
		show = show[:len(show)-1]
	}
	if isText(show) {
		return string(show), "", false, len(b) - len(show)
	}
	head := b[:min(len(b), 512)]
	return "", hex.Dump(head), true, len(b) - len(head)
}

func isText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' || r == 0x7f {
			return false
		}
	}
	return true
}

// action wraps a console POST: the CSRF token must match (the guard has
// already refused other sites and, with admin_auth, strangers).
func (c *Console) action(fn func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if !c.guard.csrfOK(operator(r), r.PostFormValue("csrf")) {
			refuse(w, r, http.StatusForbidden, "forbidden: missing or wrong CSRF token (reload the page and try again)")
			return
		}
		fn(w, r)
	}
}

func (c *Console) noQueue(w http.ResponseWriter, r *http.Request) bool {
	if c.d.Deliveries == nil {
		refuse(w, r, http.StatusConflict, "this state driver keeps no delivery history (docs/console.md)")
		return true
	}
	return false
}

func (c *Console) replayOne(w http.ResponseWriter, r *http.Request) {
	if c.noQueue(w, r) {
		return
	}
	id := r.PathValue("id")
	if err := c.d.Deliveries.Replay(id); err != nil {
		c.actionFailed(w, r, err)
		return
	}
	c.d.Log.Info("console: replayed a delivery", "id", id, "operator", operator(r))
	http.Redirect(w, r, "/console/deliveries/"+url.PathEscape(id)+"?done=replayed", http.StatusSeeOther)
}

// replayDead replays every dead letter of one route, a page of the
// history at a time (the queue's ReplayDead has no route filter).
func (c *Console) replayDead(w http.ResponseWriter, r *http.Request) {
	if c.noQueue(w, r) {
		return
	}
	route := r.PostFormValue("route")
	if !slices.Contains(asyncRoutes(c.d.Config()), route) {
		refuse(w, r, http.StatusBadRequest, "replay: choose an async route")
		return
	}
	n := 0
	f := delivery.Filter{State: delivery.Dead, Route: route, Limit: delivery.MaxListLimit}
	for {
		ds, err := c.d.Deliveries.List(f)
		if err != nil {
			c.actionFailed(w, r, err)
			return
		}
		for _, x := range ds {
			if err := c.d.Deliveries.Replay(x.ID); err != nil && !errors.Is(err, delivery.ErrNotFound) {
				c.actionFailed(w, r, err)
				return
			}
			n++
			f.Before = x.ID
		}
		if len(ds) < f.Limit {
			break
		}
	}
	c.d.Log.Info("console: replayed dead letters", "route", route, "count", n, "operator", operator(r))
	http.Redirect(w, r, "/console/deliveries?"+url.Values{"route": {route}, "done": {"replayed-dead"}, "n": {strconv.Itoa(n)}}.Encode(), http.StatusSeeOther)
}

func (c *Console) purge(w http.ResponseWriter, r *http.Request) {
	if c.noQueue(w, r) {
		return
	}
	st, err := delivery.ParseState(r.PostFormValue("state"))
	if err == nil && st == delivery.Pending {
		err = fmt.Errorf("%w: pending deliveries are never purged", delivery.ErrInvalid)
	}
	if err != nil {
		c.actionFailed(w, r, err)
		return
	}
	// Every one in the state, whatever its time: the queue stamps times
	// with its own clock, and "purge delivered" means all of them.
	n, err := c.d.Deliveries.Purge(st, purgeAll)
	if err != nil {
		c.actionFailed(w, r, err)
		return
	}
	c.d.Log.Info("console: purged deliveries", "state", string(st), "count", n, "operator", operator(r))
	http.Redirect(w, r, "/console/deliveries?"+url.Values{"done": {"purged-" + string(st)}, "n": {strconv.Itoa(n)}}.Encode(), http.StatusSeeOther)
}

// purgeAll is a time after any delivery's.
var purgeAll = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *Console) actionFailed(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, delivery.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, delivery.ErrInvalid):
		code = http.StatusBadRequest
	}
	refuse(w, r, code, err.Error())
}

// flash is the message after an action's redirect: fixed texts chosen by
// the query, so no request text is echoed as a message.
func flash(q url.Values) string {
	n := q.Get("n")
	if _, err := strconv.Atoi(n); err != nil {
		n = "?"
	}
	switch q.Get("done") {
	case "replayed":
		return "Replayed: the delivery is pending again, due now, with a fresh retry budget."
	case "replayed-dead":
		return "Replayed " + n + " dead letters of the route."
	case "purged-delivered":
		return "Purged " + n + " delivered deliveries."
	case "purged-dead":
		return "Purged " + n + " dead letters."
	case "login":
		return "Signed in."
	}
	return ""
}

// --- keys, config (agents: agents.go) -----------------------------------

type keysData struct {
	Keys  []gateway.KeyUsage
	Plans []planRow
}

type planRow struct {
	Name, Quota, Throttle string
}

func (c *Console) keys(w http.ResponseWriter, r *http.Request) {
	p := page{Title: "Keys and quotas", Nav: "keys"}
	cfg := c.d.Config()
	var d keysData
	if c.d.Gateway != nil {
		us, err := c.d.Gateway().Usage(r.Context(), c.d.Now())
		if err != nil {
			p.Error = "quota usage: " + err.Error()
		}
		d.Keys = us
	}
	if d.Keys == nil {
		for _, k := range cfg.APIKeys {
			d.Keys = append(d.Keys, gateway.KeyUsage{Key: k.Name, Plan: k.Plan, Enabled: k.Enabled == nil || *k.Enabled})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.UsagePlans)) {
		pl := cfg.UsagePlans[name]
		row := planRow{Name: name, Quota: "none", Throttle: "none"}
		if pl.Quota != nil {
			row.Quota = fmt.Sprintf("%d per %s", pl.Quota.Limit, strings.ToLower(string(pl.Quota.Period)))
			if pl.Quota.Offset != 0 {
				row.Quota += fmt.Sprintf(" (offset %d)", pl.Quota.Offset)
			}
		}
		if pl.Throttle != nil {
			row.Throttle = fmt.Sprintf("rate %v/s, burst %v", pl.Throttle.Rate, pl.Throttle.Burst)
		}
		d.Plans = append(d.Plans, row)
	}
	p.Data = d
	c.render(w, r, http.StatusOK, "keys", p)
}

type configData struct {
	File   string
	YAML   string
	Egress string
	Err    string
}

func (c *Console) configPage(w http.ResponseWriter, r *http.Request) {
	cfg := c.d.Config()
	d := configData{File: cfg.File}
	var err error
	if d.YAML, err = redactedYAML(cfg); err != nil {
		d.Err = err.Error()
	}
	d.Egress = egressTable(cfg)
	c.render(w, r, http.StatusOK, "config", page{Title: "Config", Nav: "config", Data: d})
}

// --- login --------------------------------------------------------------

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	if c.d.Config().AdminAuth == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", page{Title: "Sign in", Nav: "login"})
}

// login trades a token, POSTed in the form's body (never in a URL), for a
// session cookie that only this origin's requests carry.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	a := c.d.Config().AdminAuth
	if a == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	name, ok, wait := c.guard.token(r, a, r.PostFormValue("token"))
	if wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		c.render(w, r, http.StatusTooManyRequests, "login", page{Title: "Sign in", Nav: "login",
			Error: "Too many wrong tokens from this network: try again in " + strconv.Itoa(secs) + " s."})
		return
	}
	if !ok {
		c.render(w, r, http.StatusUnauthorized, "login", page{Title: "Sign in", Nav: "login", Error: "That token is not one of admin_auth's."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: c.guard.newSession(name), Path: "/",
		MaxAge: int(SessionTTL / time.Second), Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	c.d.Log.Info("console: signed in", "operator", name)
	http.Redirect(w, r, "/?done=login", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, loginPath, http.StatusSeeOther)
}

// --- formatting ---------------------------------------------------------

func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "in " + ago(-d)
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + " d"
}

func byteSize(n int) string {
	switch {
	case n < 1<<10:
		return strconv.Itoa(n) + " B"
	case n < 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}
