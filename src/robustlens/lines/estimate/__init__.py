"""How will my model do on this data? Accuracy on unlabelled data from label-free predictors.

Every label-free predictor of the study (average confidence, DoC, ATC, the nuclear norm,
effective invariance, agreement between models, clustering indicators) is calibrated per model
on the study's labelled shifts and estimates the accuracy on each unlabelled dataset (layout
``unlabeled``), with its expected error from leaving one labelled shift out and an interval;
the predictor most reliable on the labelled shifts is recommended.
"""

from robustlens.lines.estimate.commands import register
from robustlens.lines.estimate.measure import AgreementMeasure
from robustlens.lines.estimate.section import render_estimate
from robustlens.measure import Line, Section

LINE = Line(
    name="estimate",
    title="Accuracy on unlabelled data, estimated from calibrated label-free predictors",
    measures=(AgreementMeasure,),
    sections=(Section("How will my model do on this data?", render_estimate, 35),),
    commands=(register,),
    papers=(
        "Deng and Zheng, Are Labels Always Necessary for Classifier Accuracy Evaluation?, "
        "CVPR 2021",
        "Garg et al., Leveraging Unlabeled Data to Predict Out-of-Distribution Performance, "
        "ICLR 2022",
        "Baek et al., Agreement-on-the-Line, NeurIPS 2022",
        "Barber et al., Predictive Inference with the Jackknife+, Annals of Statistics 2021",
    ),
)
