"""Robustness indicators from k-means clustering of latent features (seed 000)."""

from robustlens.lines.clustering.commands import register
from robustlens.lines.clustering.measure import ClusteringMeasure
from robustlens.lines.clustering.section import render_clustering
from robustlens.measure import Line, Section

LINE = Line(
    name="clustering",
    title="Label-free robustness indicators from clustering penultimate features",
    measures=(ClusteringMeasure,),
    sections=(Section("Clustering indicators of robustness", render_clustering, 40),),
    commands=(register,),
    papers=("Ho et al., Robustness indicators from latent-space clustering, 2022",),
)
