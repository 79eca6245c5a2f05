"""Figures: a one-pass layout where matplotlib can fit them, and log axes labelled without math text."""

import numpy as np

from derive.figures import _decade, _tight, pyplot


def heatmaps(panels: int):
    plt = pyplot()
    fig = plt.figure(figsize=(7, 4))
    axes = np.atleast_1d(fig.subplots(1, panels))
    for ax in axes:
        image = ax.imshow(np.arange(9.0).reshape(3, 3))
    fig.colorbar(image, ax=list(axes) if panels > 1 else axes[0])
    return plt, fig


def test_a_colour_bar_beside_one_panel_fits_in_one_pass():
    plt, fig = heatmaps(1)
    try:
        assert _tight(fig)
    finally:
        plt.close(fig)


def test_a_colour_bar_shared_by_panels_needs_the_constrained_layout():
    plt, fig = heatmaps(3)
    try:
        assert not _tight(fig)
    finally:
        plt.close(fig)


def test_log_axes_label_their_decades_in_plain_text():
    assert [_decade(v) for v in (1e-8, 1.0, 100.0, 1e15)] == ["10⁻⁸", "10⁰", "10²", "10¹⁵"]
    assert [_decade(v) for v in (2e-3, 0.0, -10.0, 5.0)] == ["", "", "", ""]
