"""Sample-quality metrics on features or class probabilities; no feature network inside.

- fid: gaussian_stats, frechet_distance, frechet_distance_features
- kid: kid (unbiased MMD^2, cubic polynomial kernel)
- precision_recall: precision_recall (improved precision and recall, k-NN balls)
- classifier: classifier_score, class_coverage, conditional_accuracy
- ssim: ssim (structural similarity of image pairs)
"""
from jaxgen.metrics.classifier import class_coverage, classifier_score, conditional_accuracy
from jaxgen.metrics.fid import frechet_distance, frechet_distance_features, gaussian_stats
from jaxgen.metrics.kid import kid
from jaxgen.metrics.precision_recall import precision_recall
from jaxgen.metrics.ssim import ssim

__all__ = [
    "class_coverage", "classifier_score", "conditional_accuracy", "frechet_distance",
    "frechet_distance_features", "gaussian_stats", "kid", "precision_recall", "ssim",
]
