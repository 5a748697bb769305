"""Argument validation and fitting for :mod:`he_ml.ml.polynomial`.

One piece of :mod:`he_ml.ml.polynomial`; the map of what lives where is in its module docstring.

Everything here is re-exported by :mod:`he_ml.ml.polynomial`; import it from there.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import numpy as np
from numpy.polynomial import chebyshev as _cheb

from he_ml.errors import ParameterError
from he_ml.ml.activations import ACTIVATIONS, get_activation
from he_ml.schemes.limits import limit

METHODS = ("minimax", "least_squares", "chebyshev")

#: Above degree 31 the power-basis coefficients that encrypted evaluation needs grow like
#: (1 + sqrt 2)^degree (Chebyshev -> monomial conversion) and lose more precision than CKKS keeps.
MAX_DEGREE = limit("polynomial_degree_max")  # 31, see he_ml.schemes.limits

#: Relative equioscillation tolerance at which Remez stops: (max|e| - min|e|) / max|e|.
REMEZ_TOLERANCE = 1e-6
REMEZ_MAX_ITERATIONS = 60


def _checked_values(func: Callable, x: np.ndarray, name: str) -> np.ndarray:
    """Call the user's vectorised function and insist on finite float values of x's shape."""
    try:
        with np.errstate(all="ignore"):
            y = func(x)
    except (TypeError, ValueError) as e:
        raise ParameterError(
            f"function {name!r} must be a vectorised callable f(numpy_array) -> numpy_array of the "
            f"same shape; calling it on a float64 array of shape {x.shape} raised "
            f"{type(e).__name__}: {e}. Wrap a scalar function with numpy.vectorize."
        ) from e
    try:
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ParameterError(
            f"function {name!r} must return real numbers; got {type(y).__name__} that numpy cannot "
            f"convert to float64 ({e})."
        ) from e
    if y.shape != x.shape:
        raise ParameterError(
            f"function {name!r} must return an array of the input's shape {x.shape}; got shape "
            f"{y.shape}. Make it elementwise (e.g. numpy.vectorize)."
        )
    bad = ~np.isfinite(y)
    if bad.any():
        x_bad = float(x[bad][0])
        raise ParameterError(
            f"function {name!r} is not finite at x = {x_bad:.6g} (got {float(y[bad][0])}); "
            f"choose an interval on which it is finite and bounded."
        )
    return y


def _validate_degree(degree: Any) -> int:
    if isinstance(degree, bool) or not isinstance(degree, numbers.Integral):
        raise ParameterError(
            f"degree must be an integer in [1, {MAX_DEGREE}]; got {degree!r} "
            f"({type(degree).__name__})."
        )
    degree = int(degree)
    if degree < 1:
        raise ParameterError(
            f"degree must be an integer in [1, {MAX_DEGREE}]; got {degree}. A constant is not an "
            f"approximation; use degree >= 1."
        )
    if degree > MAX_DEGREE:
        raise ParameterError(
            f"degree must be an integer in [1, {MAX_DEGREE}]; got {degree}. Above {MAX_DEGREE} the "
            f"power-basis coefficients needed for encrypted evaluation lose more precision than CKKS "
            f"keeps, and the depth ({degree.bit_length()} levels) needs very large parameters; "
            f"narrow the interval or lower the degree."
        )
    return degree


def _validate_interval(interval: Any) -> tuple[float, float]:
    try:
        a, b = interval
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        raise ParameterError(
            f"interval must be a pair of finite numbers (a, b) with a < b; got {interval!r}."
        ) from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ParameterError(
            f"interval must be a pair of finite numbers (a, b) with a < b; got ({a}, {b}). "
            f"Polynomials cannot approximate on an unbounded interval: pick the range of your data."
        )
    if not a < b:
        raise ParameterError(
            f"interval must satisfy a < b; got ({a:g}, {b:g}). Give the lower bound first."
        )
    if (b - a) <= 1e-12 * max(abs(a), abs(b)):
        raise ParameterError(
            f"interval ({a:g}, {b:g}) is too narrow to resolve in float64; widen it."
        )
    return a, b


def _validate_method(method: Any) -> str:
    key = str(method).strip().lower().replace("-", "_").replace(" ", "_") if isinstance(method, str) else None
    aliases = {"lstsq": "least_squares", "ls": "least_squares", "remez": "minimax",
               "chebyshev_interpolation": "chebyshev"}
    key = aliases.get(key, key)
    if key not in METHODS:
        raise ParameterError(
            f"method must be one of {', '.join(repr(m) for m in METHODS)}; got {method!r}."
        )
    return key


def _validate_input_scaling(value: Any) -> str:
    if value not in ("auto", "fold", "level"):
        raise ParameterError(f"input_scaling must be 'auto', 'fold' or 'level'; got {value!r}.")
    return value


def _resolve_function(func: Any) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    if isinstance(func, str):
        f = get_activation(func)
        return func.strip().lower(), f
    if callable(func):
        name = getattr(func, "__name__", None) or type(func).__name__
        return name, func
    raise ParameterError(
        f"func must be an activation name ({', '.join(sorted(ACTIVATIONS))}) or a vectorised "
        f"callable; got {type(func).__name__}."
    )


def _detect_parity(g: Callable[[np.ndarray], np.ndarray]) -> str | None:
    """'odd' if g(t) - g(0) is odd, 'even' if g(t) - g'(0) t is even (about t = 0), else None."""
    s = np.linspace(1.0 / 257, 1.0, 257)
    both = g(np.concatenate([s, -s, [0.0]]))
    gp, gm, g0 = both[:257], both[257:514], both[-1]
    scale = float(np.max(np.abs(both))) + 1e-300
    tol = 1e-11 * scale
    if np.max(np.abs(gp + gm - 2.0 * g0)) <= tol:
        return "odd"
    h = 0.5 * (gp - gm)
    slope = float(np.dot(h, s) / np.dot(s, s))
    if np.max(np.abs(h - slope * s)) <= tol:
        return "even"
    return None


def _fit_least_squares(g, w, n, grid_size):
    t = np.linspace(-1.0, 1.0, grid_size)
    y = g(t)
    sw = np.sqrt(w(t)) if w is not None else np.ones_like(t)
    V = _cheb.chebvander(t, n) * sw[:, None]
    coef, *_ = np.linalg.lstsq(V, y * sw, rcond=None)
    return coef


def _fit_chebyshev(g, n):
    # Interpolation at the n + 1 Chebyshev points of the first kind (numpy's chebinterpolate).
    return _cheb.chebinterpolate(g, n)


def _alternating_extrema(t: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Index of the largest |e| in every maximal run of constant sign (alternating by construction)."""
    nz = np.flatnonzero(e != 0.0)
    if nz.size == 0:
        return nz
    s = np.sign(e[nz])
    breaks = np.flatnonzero(np.diff(s) != 0) + 1
    idx = []
    for run in np.split(nz, breaks):
        idx.append(run[np.argmax(np.abs(e[run]))])
    return np.asarray(idx)


def _trim_reference(idx: np.ndarray, e: np.ndarray, npts: int) -> np.ndarray:
    """Reduce alternating extrema to ``npts`` keeping alternation and the largest errors."""
    idx = list(idx)
    while len(idx) > npts:
        mags = np.abs(e[idx])
        if len(idx) == npts + 1:
            idx.pop(0 if mags[0] < mags[-1] else -1)
            continue
        i = int(np.argmin(mags))
        if i == 0 or i == len(idx) - 1:
            idx.pop(i)
        else:
            # Removing an interior point makes its neighbours same-signed: drop the smaller one too.
            j = i - 1 if mags[i - 1] < mags[i + 1] else i + 1
            for k in sorted((i, j), reverse=True):
                idx.pop(k)
    return np.asarray(idx)


def _fit_minimax(g, w, basis, lo, hi, grid_size, start):
    """Remez exchange for ``g`` on ``[lo, hi]`` in the span of ``basis(t)`` (columns).

    ``basis(t)`` returns the matrix of basis functions at ``t`` (shape ``(len(t), dim)``);
    the reference has ``dim + 1`` points.  Returns (coefficients in the basis, final
    reference, converged, notes).
    """
    grid = np.linspace(lo, hi, grid_size)
    # Cosine-spaced points as well: the error oscillates fastest near the end points.
    grid = np.union1d(grid, lo + (hi - lo) * 0.5 * (1.0 - np.cos(np.linspace(0.0, np.pi, grid_size))))
    g_grid = g(grid)
    w_grid = w(grid) if w is not None else np.ones_like(grid)
    B_grid = basis(grid)
    dim = B_grid.shape[1]
    npts = dim + 1
    scale = float(np.max(np.abs(g_grid))) + 1e-300
    signs = (-1.0) ** np.arange(npts)
    coef = np.zeros(dim)

    def err(t, gt=None, wt=None, Bt=None):
        gt = g(t) if gt is None else gt
        wt = (w(t) if w is not None else 1.0) if wt is None else wt
        Bt = basis(t) if Bt is None else Bt
        return (gt - Bt @ coef) * wt

    best = None  # (max weighted error, coef, reference)
    notes: list[str] = []
    converged = False
    ref = np.asarray(start, dtype=np.float64)
    for _ in range(REMEZ_MAX_ITERATIONS):
        wr = w(ref) if w is not None else np.ones_like(ref)
        A = np.empty((npts, npts))
        A[:, :dim] = basis(ref)
        A[:, dim] = signs / wr
        try:
            sol = np.linalg.solve(A, g(ref))
        except np.linalg.LinAlgError:
            notes.append("Remez: singular reference system")
            break
        coef = sol[:-1]
        # Error on the grid and at the reference (where it alternates in sign by construction).
        tt = np.concatenate([grid, ref])
        e_all = np.concatenate([err(grid, g_grid, w_grid, B_grid), err(ref)])
        order = np.argsort(tt, kind="stable")
        tt, e_all = tt[order], e_all[order]
        maxerr = float(np.max(np.abs(e_all)))
        if maxerr <= 1e-14 * scale:  # g itself lies in the span (e.g. f is a polynomial)
            best = (maxerr, coef.copy(), ref.copy())
            converged = True
            break
        idx = _alternating_extrema(tt, e_all)
        if idx.size < npts:
            notes.append(f"Remez: only {idx.size} sign alternations for the {npts} needed")
            if best is None or maxerr < best[0]:
                best = (maxerr, coef.copy(), ref.copy())
            break
        idx = _trim_reference(idx, e_all, npts)
        new_ref, new_e = _refine_extrema(tt, idx, e_all, err)
        maxerr = max(maxerr, float(np.max(np.abs(new_e))))
        if best is None or maxerr < best[0]:
            best = (maxerr, coef.copy(), new_ref.copy())
        mags = np.abs(new_e)
        levelling = float((mags.max() - mags.min()) / mags.max())
        # Equioscillation to the tolerance, or to the float64 resolution of the error itself.
        if levelling <= max(REMEZ_TOLERANCE, 1e-14 * scale / mags.max()):
            converged = True
            break
        if np.array_equal(new_ref, ref):
            notes.append(f"Remez: reference stopped moving at levelling {levelling:.1e}")
            break
        ref = new_ref
    else:
        notes.append(f"Remez: no equioscillation to {REMEZ_TOLERANCE:g} within "
                     f"{REMEZ_MAX_ITERATIONS} iterations (typical for non-smooth functions)")
    return best, converged, notes


def _minimax_cheb(g, w, n, parity, grid_size):
    """Minimax Chebyshev coefficients of degree ``n`` for ``g`` on [-1, 1].

    With a parity (see `_detect_parity`) the problem is solved on [0, 1] in the reduced
    basis -- a symmetric reference of odd size would otherwise force the levelled error
    to zero for odd ``g`` (a classic Remez degeneracy).  Returns
    (Chebyshev coefficients, reference points in t, converged, notes).
    """
    cheb = np.zeros(n + 1)
    if parity == "odd":
        ks = np.arange(1, n + 1, 2)  # T_1, T_3, ...
        c0 = float(g(np.zeros(1))[0])
        gr = lambda t: g(t) - c0  # noqa: E731 - odd about 0, approximated on (0, 1]
        N = int(ks[-1]) + 2  # extrema of T_N in (0, 1]: len(ks) + 1 points, none at 0
        start = np.sort(np.cos(np.pi * np.arange(0, (N - 1) // 2 + 1) / N))
        lo, hi = 1e-9, 1.0
    elif parity == "even":
        ks = np.arange(0, n + 1, 2)  # T_0, T_2, ...
        s = np.linspace(1.0 / 257, 1.0, 257)
        gp, gm = g(s), g(-s)
        slope = float(np.dot(0.5 * (gp - gm), s) / np.dot(s, s))
        gr = lambda t: g(t) - slope * np.asarray(t)  # noqa: E731 - even about 0
        N = int(ks[-1]) + 2  # extrema of T_N in [0, 1] (N even: includes 0)
        start = np.sort(np.cos(np.pi * np.arange(0, N // 2 + 1) / N))
        lo, hi = 0.0, 1.0
        if n >= 1:
            cheb[1] = slope
    else:
        ks = np.arange(0, n + 1)
        gr = g
        start = np.cos(np.pi * np.arange(n + 1, -1, -1) / (n + 1))  # extrema of T_{n+1}
        lo, hi = -1.0, 1.0

    def basis(t):
        return _cheb.chebvander(np.asarray(t, dtype=np.float64), n)[:, ks]

    best, converged, notes = _fit_minimax(gr, w, basis, lo, hi, grid_size, start)
    if not converged and parity is None:
        # Second start, deliberately asymmetric, before settling for the best iterate.
        warped = start + 0.05 * (1.0 - start ** 2)
        best2, converged2, notes2 = _fit_minimax(gr, w, basis, lo, hi, grid_size, warped)
        if best2 is not None and (best is None or best2[0] < best[0]):
            best, converged, notes = best2, converged2, notes + ["restarted from an asymmetric reference"] + notes2
    if best is None:
        raise ParameterError(
            "minimax (Remez) could not start for this function; use method='least_squares' or "
            "method='chebyshev'."
        )
    if not converged:
        notes = notes + ["kept the best iterate (max error measured, not estimated)"]
    coef, ref = best[1], best[2]
    cheb[ks] += coef
    if parity is not None:
        ref = np.concatenate([-ref[::-1], ref])
        if parity == "odd":
            cheb[0] = c0
    return cheb, ref, converged, tuple(notes)


def _refine_extrema(tt, idx, e_all, err, zooms: int = 3, k: int = 33):
    """Locate each extremum between its grid neighbours by repeated local sampling (vectorised)."""
    lo = tt[np.maximum(idx - 1, 0)]
    hi = tt[np.minimum(idx + 1, tt.size - 1)]
    cur_t = tt[idx].copy()
    cur_e = e_all[idx].copy()
    sgn = np.sign(cur_e)
    frac = np.linspace(0.0, 1.0, k)
    for _ in range(zooms):
        pts = lo[:, None] + (hi - lo)[:, None] * frac[None, :]
        vals = err(pts.ravel()).reshape(pts.shape) * sgn[:, None]
        j = np.argmax(vals, axis=1)
        rows = np.arange(idx.size)
        better = vals[rows, j] > cur_e * sgn
        cur_t = np.where(better, pts[rows, j], cur_t)
        cur_e = np.where(better, vals[rows, j] * sgn, cur_e)
        step = (hi - lo) / (k - 1)
        lo = np.maximum(cur_t - step, lo)
        hi = np.minimum(cur_t + step, hi)
    # Keep the points strictly increasing (refinement never crosses a neighbour's bracket,
    # but two brackets can touch).
    order = np.argsort(cur_t)
    return cur_t[order], cur_e[order]
