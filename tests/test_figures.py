"""Figures take matplotlib's one-pass tight layout, or the constrained one where it cannot fit them."""

import numpy as np

from derive.figures import _tight, pyplot


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
