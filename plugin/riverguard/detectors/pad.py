"""Predictive anomaly detection around a River forecaster."""

from __future__ import annotations

import math

from river import anomaly, time_series

from .base import Detector, Explanation, flag_limit
from .params import Param
from .river_spec import measured

_P, _D, _Q = measured("time_series.SNARIMAX")[:3]

__all__ = ["FORECASTERS", "PAD"]



def _ratio(r: float) -> float:
    return r if r < 1.0 else 1.0


#: A squared error above this is not learned (the value is more than 1e75 from the forecast): the error
#: statistics square it again (their variance), and the forecaster would carry the value for ~1000 samples.
FAR = 1e150
#: After this many such values in a row the forecaster starts over from the next value (the series moved
#: that far, or the forecaster learned a huge value before it could predict).
FAR_RUN = 3

FORECASTERS = ("holtwinters", "snarimax")


class PAD(Detector):
    """``river.anomaly.PredictiveAnomalyDetection`` with a ``river.time_series`` forecaster.

    The forecaster predicts the next value; the squared error of the
    prediction is compared with the running mean plus ``n_std`` standard
    deviations of past squared errors: at or above it the score is 1.0,
    below it the ratio. Until the forecaster has learned enough to predict
    (Holt-Winters needs two values) the score is 0.0, and an exact prediction
    scores 0.0 (River would report 1.0 on a constant series).

    Values near the float's limit never spoil it: a value whose squared error
    exceeds ``FAR`` (1e150, more than 1e75 from the forecast) scores 1.0 and
    is learned by neither the forecaster nor the error statistics; after
    ``FAR_RUN`` such values in a row, or a forecast that is no longer finite,
    the forecaster starts over (the error statistics stay).

    Explained (``[output] explain``) as the forecast, and the forecast plus or
    minus the error whose square scores the rule's threshold: exact, the band
    is this detector's whole evidence.

    Parameters
    ----------
    Declared in ``PAD.PARAMS`` (see ``docs/parameters.md``).

    Examples
    --------
    >>> import math
    >>> from riverguard.detectors import PAD
    >>> det = PAD()
    >>> wave = [det.process(10 + math.sin(i / 5)) for i in range(200)]
    >>> round(max(wave[50:]), 2)
    0.6
    >>> det.process(30.0)
    1.0

    References
    ----------
    [^1]: Laptev, N., Amizadeh, S. and Flint, I., 2015. Generic and scalable
    framework for automated time-series anomaly detection. KDD.
    """

    name = "pad"
    default_threshold = 1.0
    default_warmup = 30

    PARAMS = (
        Param("forecaster", "holtwinters", "The forecaster: level and trend smoothing, or SNARIMAX.",
              choices=FORECASTERS),
        Param("alpha", 0.3, "Holt-Winters level smoothing.", low=0.0, high=1.0, low_open=True),
        Param("beta", 0.1, "Holt-Winters trend smoothing (0: no trend).", low=0.0, high=1.0),
        # (The bounds of River's SNARIMAX, as a river rule's model spec takes them.)
        _P.but(doc="SNARIMAX auto-regressive order (the time per sample grows with p + q)."),
        _D.but(doc="SNARIMAX differencing order."),
        _Q.but(doc="SNARIMAX moving-average order."),
        Param("n_std", 3.0, "Standard deviations of the squared error above its mean that score 1.0.",
              low=0.0, low_open=True),
    )  # fmt: skip
    forecaster: str
    alpha: float
    beta: float
    p: int
    d: int
    q: int
    n_std: float

    #: Values in a row too far from the forecast to learn (a class default: checkpoints from before it lack it).
    _far = 0

    def _start(self) -> None:
        self._pad = anomaly.PredictiveAnomalyDetection(self._forecaster(), horizon=1, n_std=self.n_std)
        self._n = 0

    def _forecaster(self) -> time_series.base.Forecaster:
        if self.forecaster == "holtwinters":
            return time_series.HoltWinters(alpha=self.alpha, beta=self.beta or None)
        return time_series.SNARIMAX(p=self.p, d=self.d, q=self.q)

    def _error(self, x: float) -> tuple[float, float] | None:
        """The one-step forecast and its squared error for ``x``; None before the forecaster can predict.

        The error is infinite where squaring overflows (values near 1e300), not an OverflowError, and
        where the forecast is not finite (the forecaster is spoiled: :meth:`learn_one` starts it over).
        """
        try:
            predicted = self._pad.predictive_model.forecast(1)[0]
        except (IndexError, ValueError, ZeroDivisionError):
            return None  # nothing learned yet
        if not math.isfinite(predicted):
            return predicted, math.inf
        try:
            return predicted, (predicted - x) ** 2  # as River computes it
        except OverflowError:
            return predicted, math.inf

    def explain(self, threshold: float, t: float | None = None) -> Explanation | None:
        try:
            predicted = float(self._pad.predictive_model.forecast(1)[0])
        except (IndexError, ValueError, ZeroDivisionError, TypeError):
            return None  # nothing learned yet
        if not math.isfinite(predicted):
            return None  # spoiled: the next learn_one starts it over
        pad = self._pad
        limit = pad.dynamic_mae.get() + pad.n_std * math.sqrt(max(pad.dynamic_se_variance.get(), 0.0))
        if not limit > 0.0:  # no error seen yet: any miss scores 1.0
            return predicted, predicted, predicted
        half = math.sqrt(flag_limit(_ratio, threshold) * limit)
        return predicted, predicted - half, predicted + half

    def score_one(self, x: float, t: float | None = None) -> float:
        """River's score (the error against the mean plus ``n_std`` deviations of past errors), learning nothing."""
        forecast = self._error(x)
        if forecast is None:
            return 0.0
        predicted, error = forecast
        if predicted == x or not math.isfinite(predicted):  # (a spoiled forecaster predicts nothing)
            return 0.0
        pad = self._pad
        threshold = pad.dynamic_mae.get() + pad.n_std * math.sqrt(pad.dynamic_se_variance.get())
        score = 1.0 if error >= threshold else error / threshold
        return min(1.0, max(0.0, score))

    def learn_one(self, x: float, t: float | None = None) -> None:
        """Move the error statistics (as River's ``score_one`` does), then teach the forecaster ``x``."""
        forecast = self._error(x)
        if forecast is not None:
            predicted, error = forecast
            if error <= FAR:
                self._pad.dynamic_mae.update(error)
                self._pad.dynamic_se_variance.update(error)
                self._far = 0
            elif not math.isfinite(predicted) or self._far + 1 >= FAR_RUN:
                self._pad.predictive_model = self._forecaster()  # it learns x afresh
                self._far = 0
            else:  # too far to learn: it would overflow the statistics and stay in the forecast
                self._far += 1
                self._n += 1
                return
        self._pad.learn_one(None, float(x))
        self._n += 1
