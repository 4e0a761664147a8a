# cython: language_level=3
# C types for steps.py (Cython pure-Python mode): nothing here but declarations.
# Every parameter in a step's PARAMS and every name in its STATE ("_" + name) is declared here
# (tests/test_params.py checks it).

cimport cython
from libc.stdint cimport int64_t

cdef double _SQRT1_2, _DAY, _NAN, _INF
cdef int _WHY_SURPRISE, _WHY_ERROR, _WHY_HOUR, _WHY_EXTREME, _WHY_STUCK, _WHY_SPIKE, _WHY_SHIFT, _WHY_SPREAD, _WHY_BURST
cdef int _WHY_PEAK, _WHY_LONE
cdef int _PEAK_DAYS, _PEAK_FEW, _LONE_HOURS, _LONE_RING, _LONE_DAY
cdef int64_t _VIEW_WARM
cdef double _WEEK, _PEAK_TIME, _PEAK_QUIET, _LONE_TIME, _LONE_STANDOUT, _LONE_FINE, _LONE_QUIET
cdef double _RHYTHM, _ROUNDING, _SHIFT_DEV_CLIP, _SHIFT_MEMORY, _SHIFT_LONG, _SHIFT_FLOOR, _REPORTED
cdef double _FAR_COUNT, _FAR_END, _FAR_AFTER, _FAR_YOUTH, _LONG_MEMORY, _LONG_CLIP, _HUGE
cdef int64_t _COUNTER_RISES
cdef int _RUN_FLOOR, _RUN_CEILING, _RECORD_FLOOR, _RECORD_CEILING, _WILD_HIGH, _WILD_LOW
cdef double _COUNTER_SAMPLES
cdef double *_LEVELS
cdef double *_CUTS
cdef double *_BAND
cdef bint _LITTLE
cdef double _FLT_MAX
cdef int64_t _MAX_COUNT, _MAX_SIGNED

cdef void *_calloc(Py_ssize_t n, size_t size) except NULL
cdef unsigned char *zeroed_bytes(Py_ssize_t n) except NULL
cdef double *zeroed_doubles(Py_ssize_t n) except NULL
cdef float *zeroed_floats(Py_ssize_t n) except NULL
cdef void free_buffer(void *p) noexcept
cdef int _cut(double *cuts, int m, double a, double b) noexcept
cdef inline bint _duration(double v) noexcept
cdef inline bint _lasts(double run, double need, double slack) noexcept
cdef inline double _paid(double owe, double span) noexcept
cdef inline bint _forgives(double owe) noexcept
cdef inline bint _on_side(double d, int side) noexcept
@cython.locals(two=double)
cdef inline double _lone(double need, double slack) noexcept
cdef inline bint _owing(double owe) noexcept
@cython.locals(sd=double, floor=double, ft=double)
cdef inline double _deviation(Settings cfg, double s2, double mu, double gap) except? -1.0
@cython.locals(floor=double)
cdef inline double _scale(double s, double level) noexcept
@cython.locals(w=double)
cdef inline double _share(double part, double whole, int64_t n) noexcept
@cython.locals(w=double)
cdef inline double _window(Settings cfg, double gap) noexcept
cdef inline double _clip(double x, double c) noexcept
@cython.locals(i=int, j=int, below=int, same=int, v=double, w=double, last=int)
cdef double _kth(double *values, int first, int n, double extra, int k) noexcept
@cython.locals(m=int, half=int)
cdef double _median(double *values, int first, int n, double extra) noexcept
cdef inline double _decay(double gap, double tau) noexcept
@cython.locals(b=double)
cdef inline double _ew(double a, int64_t n) noexcept
cdef inline double _long_weight(Settings cfg, int64_t n) noexcept
cdef inline double _running(double lam, int64_t n) noexcept
cdef inline bint _hides(double score, bint on, bint through, bint hour, double day_score) noexcept
@cython.locals(w=double)
cdef inline double _bound(double x, double lo, double hi) noexcept
@cython.locals(r=double)
cdef inline double _reach(double k, double record, double top) noexcept
@cython.locals(q=double)
cdef inline int _level(double x, double lo, double span, int levels) noexcept
cdef object bytes_io(unsigned char *buf, Py_ssize_t n, object data)
@cython.locals(out=bytes)
cdef object doubles_io(double *buf, Py_ssize_t n, object data)
@cython.locals(i=Py_ssize_t, wide="double *")
cdef object floats_io(float *buf, Py_ssize_t n, object data, int side)
cdef inline double _f32(double x) noexcept
@cython.locals(b=double, f=float)
cdef inline float _f32_out(double x, int side) noexcept


cdef dict _RECORDS
cdef int _RECORD, _FLOAT, _INT, _BOOL
cdef tuple _record(object det)


cdef class Settings:
    # every setting of the shared steps (a detector's own surprise step adds its own in a subclass), and what
    # follows from them; one object per rule, which every step of every series of the rule refers to
    cdef readonly dict values
    cdef readonly int nlevels, slots
    cdef readonly double width, scale
    # explain_into's limits for the last threshold explained (limits)
    cdef readonly double xthr, xeff, xu, xud, xday, xdayq
    # the views step's decays for an interval (Views.observe)
    cdef readonly double vdt, vday, vweek, vhour
    # 1 - fading, 1 - day_fading, 1 - short, extreme_sd ** 2, 1 - repeat_decay, 1 - spike_forget, 1 - shift_forget,
    # learn // 4
    cdef readonly double fading_keep, day_fading_keep, short_keep, extreme_sd_sq, spike_forget_keep
    cdef readonly double shift_forget_keep
    # min_sd ** 2, short / (2 - short) (Likelihood's _deviation)
    cdef readonly double min_var, poisson
    cdef readonly int64_t learn_quarter
    # Suppression: the largest score not flagged at fire, where a damped likelihood score stops; Pipeline: the
    # largest likelihood score that, damped, stays there
    cdef readonly double fire_below, quiet_cap
    # PredictionError
    cdef public double fading, z_scale
    # TimeOfDay
    cdef public int day_slots, day_visits
    cdef public bint weekend_slots, day_detrend
    cdef public double day_margin, day_score, day_fading, day_width
    # Likelihood
    cdef public double short, long, min_sd, pmin, long_time, fine_time
    # Extremes
    cdef public double margin, extreme, extreme_sd, value_long, extreme_time
    cdef public bint extreme_once
    # Counter
    cdef public double counter_time, counter_burst
    # Stuck
    cdef public double repeat_decay
    cdef public bint stuck_longest
    # Spike
    cdef public double spike, spike_fading, spike_record, spike_score, spike_forget, spike_time, far, far_time, far_record
    # Shift
    cdef public double shift, shift_time, shift_samples, shift_record, shift_forget, shift_score, shift_time_last
    # Spread
    cdef public double spread
    # Views
    cdef public double peak, rise, agree, lone
    # Suppression
    cdef public double fire, damp, suppress_time
    cdef public int64_t suppress
    cdef public bint day_through
    # Pipeline
    cdef public int64_t learn
    cdef public double learn_time

    cdef int limits(self, double threshold) except -1


cdef class Step:
    cpdef bytes _dump_buffer(self, str name)
    cpdef bint _load_buffer(self, str name, object data) except -1
    cdef object _buffer(self, str name, object data)
    cdef bint _fits(self) except -1


cdef class Surprise(Step):
    cdef double raw(self, int b, int64_t n) except? -2.0
    cdef int peek(self, double *out) except -1


cdef class PredictionError(Step):
    cdef readonly Settings cfg
    cdef public double _mean, _var

    @cython.locals(d=double, var=double, z=double)
    cdef double score(self, double x) except? -1.0
    @cython.locals(d=double, var=double, a=double)
    cdef void learn(self, double x) noexcept


cdef class TimeOfDay(Step):
    cdef readonly Settings cfg
    # _slot an int beside hit, far_mean and ready (one byte each): the step fits 64 bytes; _lo holds every slot's
    # low, then every slot's high
    cdef signed char hit, far_mean, ready
    cdef public int _slot
    cdef float *_lo
    cdef unsigned char *_visits
    cdef float *_stat

    @cython.locals(width=double, tt=double, day=double, slot=int64_t, per_day=int)
    cdef int64_t slot_at(self, object t) except? -2
    cdef inline bint _known(self, int vis, double dlo, double dhi, double span) noexcept
    @cython.locals(slot=int64_t)
    cdef int64_t settled(self, object t, double gap) except? -2
    cdef inline bint _remembers(self, int vis, double gap) noexcept
    cdef inline bint says_far(self, int vis, double dvar, double gap) noexcept
    @cython.locals(h=double, m=double)
    cdef double reach(self, int64_t slot, double span) noexcept
    @cython.locals(slot=int64_t, v=double)
    cdef bint far(self, double x, double lmean, object t, double gap, double span) except -1
    @cython.locals(slot=int64_t, v=double, vis=int, i=Py_ssize_t, ds=double,
                   dvar=double, zs=double, a=double, dlo=double, dhi=double, known=bint)
    cdef double observe(self, double x, double lmean, object t, double span, double var, double z_scale,
                        double z, double gap) except? -1.0
    @cython.locals(slots=Py_ssize_t, at=Py_ssize_t)
    cdef object _buffer(self, str name, object data)
    cdef bint _fits(self) except -1


cdef class Likelihood(Step):
    cdef readonly Settings cfg
    cdef public double _avg, _mu, _s2
    cdef readonly bint built

    @cython.locals(short=double, prev=double, avg=double, mu=double, s2=double, sd=double, dm=double, p=double,
                   lam=double, w=double)
    cdef double score(self, double raw, int64_t n, double dt, double gap) except? -1.0


cdef class Counter(Step):
    cdef readonly Settings cfg
    cdef public int64_t _rises
    cdef public double _since, _last, _rise, _top
    cdef public bint _said

    cdef void first(self, double x) noexcept
    cdef bint _fits(self) except -1
    @cython.locals(need=double)
    cdef inline bint counts(self, double gap) noexcept
    cdef inline double bar(self) noexcept
    cdef inline double fade(self, int64_t n, double span, double gap) noexcept
    @cython.locals(inc=double, prev=double, r=double, top=double, out=double)
    cdef double observe(self, double x, int64_t n, bint scoring, double span, double gap, bint counts) noexcept


cdef class Extremes(Step):
    cdef readonly Settings cfg
    cdef public double _lo, _hi, _rlo, _rhi, _lmean, _lvar, _run, _calm, _olo, _ohi, _owe
    cdef public int _climb
    # (one byte each: with the int above they fill 8 bytes, and the step fits a 128-byte block)
    cdef signed char again
    cdef signed char held

    cdef void first(self, double x) noexcept
    @cython.locals(lo=double, hi=double, rlo=double, rhi=double, ext=double, side=int, lam=double,
                   dl=double, far=bint, need=double, last=double, calm=double, inner=double, back=bint, beyond=double, wild=bint)
    cdef bint observe(self, double x, int64_t n, double span, double slack, bint counter, double level,
                      double learnt, TimeOfDay day, object t) except -1
    cdef void report(self, int side) noexcept
    cdef void settle(self) noexcept
    cdef bint _fits(self) except -1


cdef class Stuck(Step):
    cdef readonly Settings cfg
    cdef public double _prev, _c0, _k0, _c1, _k1, _run, _step, _owe
    cdef public int _len, _maxlen, _rests
    cdef public bint _rep

    cdef void first(self, double x) noexcept
    cdef bint _fits(self) except -1
    @cython.locals(stuck=double, rep=bint, forgot=bint, longest=bint, keep=double, c1=double, k1=double, run=double,
                   record=bint, v=double, rests=int)
    cdef double score(self, double x, bint scoring, double span, double lo, double hi, double gap) except? -1.0
    @cython.locals(at_rest=bint)
    cdef bint _forgiven(self, double v, double lo, double hi, int rests) noexcept
    @cython.locals(side=int, rests=int)
    cdef bint wild(self, double x) noexcept
    @cython.locals(lam=double)
    cdef double _keep(self, double gap) noexcept
    @cython.locals(added=double, steps=int64_t)
    cdef void _forget_run(self, double keep) noexcept


cdef class Spike(Step):
    cdef readonly Settings cfg
    cdef public double _mean, _mad, _top, _run, _count, _peak, _crec, _owe

    cdef void first(self, double x) noexcept
    cdef void constant(self, double c) noexcept
    cdef inline bint lasting(self, double span) noexcept
    cdef bint _fits(self) except -1
    @cython.locals(unit=double)
    cdef inline double width(self) noexcept
    @cython.locals(unit=double, w=double)
    cdef inline double bar(self) noexcept
    @cython.locals(w=double)
    cdef inline bint sharp(self, double x) noexcept
    cdef inline double unit(self) noexcept
    cdef inline double reach(self) noexcept
    @cython.locals(c=double)
    cdef inline double far_count(self, double span) noexcept
    cdef bint burst(self, double c) noexcept
    cdef void reported(self) noexcept
    cdef inline bint far_prev(self) noexcept
    @cython.locals(unit=double)
    cdef double far_width(self, bint counting, double span) noexcept
    @cython.locals(out=bint, far=bint, c=double, rec=double, peak=double, said=bint, top=double)
    cdef bint far_out(self, double z, double span, bint old) noexcept
    @cython.locals(mean=double, mad=double, d=double, ad=double, z=double, out=double, a=double, top=double,
                   run=double, unit=double)
    cdef double score(self, double x, bint counting, bint repeat, double span, bint old, double learnt) noexcept


cdef class Level(Step):
    cdef readonly Settings cfg
    cdef public double _mean, _dev, _top, _run, _long

    cdef bint _fits(self) except -1
    cdef inline double window(self, double gap) noexcept
    @cython.locals(d=double, f=double)
    cdef inline double unit(self, double lmean, bint floor) noexcept
    cdef inline double weight(self, int64_t n, double span, double window) noexcept
    cdef inline bint ready(self, double span) noexcept
    @cython.locals(level=double, up=double, hu=double)
    cdef inline double upper(self, double a, double unit, double lmean, double r) noexcept
    @cython.locals(level=double, down=double, hl=double)
    cdef inline double lower(self, double a, double unit, double lmean, double r) noexcept
    @cython.locals(step=double)
    cdef inline double move(self, double x, double a, double unit) noexcept
    @cython.locals(lam=double, span=double)
    cdef inline double long_weight(self, int64_t n, double gap) noexcept
    @cython.locals(cfg=Settings, mean=double, a=double, c=double, m=double, d=double, ad=double, unit=double,
                   z=double, out=double, top=double, run=double, window=double,
                   counts=bint)
    cdef double judge(self, double x, double lmean, int64_t n, bint counting, double span, double gap, double reach,
                      int side, bint floor, double rearm) noexcept


cdef class Shift(Level):
    cdef public double _ldev

    cdef void first(self, double x) noexcept
    cdef bint _fits(self) except -1
    cdef inline double reach(self) noexcept
    @cython.locals(m=double, w=double)
    cdef inline void learn_long(self, double x, int64_t n, double gap, bint counting, int side) noexcept
    @cython.locals(lmean=double, d=double, unit=double)
    cdef inline bint holds(self, int side) noexcept
    @cython.locals(out=double)
    cdef double score(self, double x, int64_t n, bint counting, double span, double gap, int side) noexcept


cdef class Spread(Level):
    cdef public double _last

    cdef void first(self, double x) noexcept
    cdef bint _fits(self) except -1
    cdef inline double reach_up(self) noexcept

    @cython.locals(y=double, ylong=double, out=double, c=double, yl=double)
    cdef double observe(self, double x, int64_t n, bint counting, double span, double gap) noexcept


cdef class Views(Step):
    cdef readonly Settings cfg
    cdef public double _mag, _level, _day, _top, _usual, _wlevel, _wdev, _run, _tpeak, _hlevel, _hdev, _hour, _tlone
    cdef public int _days
    cdef public bint _whole, _done, _pend
    cdef readonly bint agrees
    cdef double *_peaks
    cdef double *_tops
    @cython.locals(i=int, n=int, buf="double *")
    cdef object _buffer(self, str name, object data)
    cdef bint _fits(self) except -1
    cdef inline double _log(self, double x) noexcept
    cdef void first(self, double x, double now) noexcept
    cdef inline bint rolls(self, double now) noexcept
    @cython.locals(days=int, first=int)
    cdef tuple rolled(self)
    @cython.locals(d=double, peaks="double *", days=int, i=int)
    cdef void roll(self, double now) noexcept
    @cython.locals(unit=double, f=double, least=double)
    cdef double unit(self, double usual) noexcept
    cdef inline double scale(self) noexcept
    @cython.locals(s=double, up=double, down=double)
    cdef tuple rise_edge(self, double k)
    cdef inline double _edge(self, double y) noexcept
    cdef inline double hscale(self) noexcept
    @cython.locals(c=double)
    cdef inline double counted(self) noexcept
    cdef inline bint hwarm(self, int64_t n, double now, double t0) noexcept
    @cython.locals(e=double)
    cdef double lone_edge(self, int64_t n, double now, double t0) noexcept
    @cython.locals(m=double, i=int, j=int, v=double)
    cdef double _tops_max(self) noexcept
    @cython.locals(r=double)
    cdef inline int _slot(self, double hour) noexcept
    @cython.locals(h=double, last=double, i=int)
    cdef void roll_hours(self, double now) noexcept
    cdef inline bint ready(self, int days, int64_t n, double now, double t0) noexcept
    @cython.locals(cfg=Settings, excursion=double, p=double, scale=double, dw=double, warm=bint, m=double, k=double,
                   a=double, week=double, lone=int, hscale=double, dh=double, s=double, i=int, ad=double, y=double)
    cdef int observe(self, double x, int64_t n, double now, double dt, double t0, double span, double gap,
                     bint far_mean, bint day_ready) noexcept
cdef class Suppression(Step):
    cdef readonly Settings cfg
    cdef public int64_t _quiet
    cdef public double _tfire
    cdef public bint _qday
    # the pipeline's _why (not state), in the padding after _qday: the pipeline is 144 B instead of 152
    cdef readonly int _why
    # the pipeline's counter step (not state: Pipeline.counter), in the padding after _why: the pipeline stays 144 B
    cdef readonly Counter counter
    # the pipeline's views step (not state: Pipeline.views), in the padding after counter: the pipeline stays 144 B
    cdef readonly Views views

    cdef bint active(self, double now) noexcept
    @cython.locals(quiet=int64_t)
    cdef double apply(self, double score, bint tod, double now) noexcept


@cython.no_gc  # (also in steps.py: this one tells the modules that cimport it, whose subclasses inherit it)
cdef class Pipeline:
    cdef readonly Settings cfg
    cdef int64_t _n
    cdef double _t0, _t1, _gap
    cdef readonly Surprise surprise
    cdef readonly PredictionError error
    cdef readonly TimeOfDay day
    cdef readonly Likelihood likelihood
    cdef readonly Extremes extremes
    cdef readonly Stuck stuck
    cdef readonly Spike spikes
    cdef readonly Shift shifts
    cdef readonly Spread spreads
    cdef readonly Suppression suppression

    @cython.locals(n=int64_t, stuck=double, lo=double, width=double, new_extreme=bint, raw=double, var=double,
                   z0=double, z=double, score=double, tod=bint, now=double, why=int, spikes=Spike, spike=double,
                   t1=double, dt=double, span=double, slack=double, gap=double, lmean=double,
                   shifts=Shift, shift=double, spreads=Spread, spread=double,
                   surprise=Surprise, counter=Counter, counts=bint, burst=double, out=double, learnt=double,
                   views=Views, own=int, warming=bint, agrees=bint)
    cpdef double process(self, double x, object t=*) except? -1.0
    @cython.locals(g=double)
    cdef inline double span(self, double dt) noexcept
    @cython.locals(g=double)
    cdef inline void _rhythm(self, double dt) noexcept
    cdef inline bint _grown(self, int64_t n, double gap) noexcept
    cdef inline bint _warming(self, int64_t n, double now, double t0) noexcept

    @cython.locals(n=int64_t, error=PredictionError, mean=double, now=double, t0=double, eff=double,
                   sup=Suppression, quiet=bint, f=double, dlo=double, dhi=double, through=bint, ext=Extremes,
                   lo=double, span=double,
                   lmean=double, cuts="double *", m=int, u=double, rmax=double, lik=Likelihood, sd=double,
                   zl=double, zu=double, nb=int, zh=double, b=int64_t, sl=double, su=double, tl=double, tu=double,
                   day=TimeOfDay, slot=int64_t, lam=double, shrink=double, base=double, vis=int, dvar=double,
                   c=double, h=double, dm=double, xl=double, xu=double, fl=double, fu=double, hs=int64_t, mx=double, d=double,
                   i=int, j=int, v=double, best=double, start=double, end=double, inside=bint, k=int,
                   left=double, right=double, x=double, ok=bint, dist=double, bad=bint,
                   xon=bint, lower=double, upper=double, hole=bint, up=double, down=double, pl=double, pu=double, cfg=Settings,
                   spon=bint, mask=bint, spk=Spike, w=double, wf=double, sp=double, slack=double, ql=double, qu=double, width=double,
                   hl=double, hu=double, hon=bint, hmask=bint, shf=Shift, unit=double, a=double, r=double,
                   xmask=bint, hour=bint, rday=double, ry=double, yall=bint, yl=double, yu=double,
                   yh=double, vl=double, vu=double, ymask=bint, gl=double, gu=double, gon=bint, gmask=bint, spr=Spread, ymin=double,
                   son=bint, smask=bint, ctr=Counter, counts=bint, cu=double, con=bint, cmask=bint, need=double,
                   vw=Views, gate=bint, al=double, ad=double, pk=double, ka=double, vdays=int, usual=double, dready=bint, le=double)
    cdef int explain_into(self, double threshold, object t, double *out) except -1
    @cython.locals(why=int, expected=double, ext=Extremes, moved=double)
    cpdef str reason(self, double x, object explanation=*)
    @cython.locals(scalars=tuple, buffers=tuple, values=list, step=Step, fields=tuple)
    cpdef list dump_state(self)
    @cython.locals(scalars=tuple, buffers=tuple, values=tuple, step=Step, fields=tuple, i=Py_ssize_t, kind=int,
                   low=int64_t, high=int64_t, q=int64_t, n=int64_t)
    cpdef load_state(self, object state)
