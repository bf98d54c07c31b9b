"""Install the project package (``custom_modules``) so configs can import it."""
from setuptools import find_packages, setup

setup(
    name='vision-defect-seg',
    version='0.1.0',
    description='Data-efficient industrial defect instance segmentation '
    '(CVPR 2023 VISION Challenge Track 1, second-place method) on OpenMMLab 3.',
    packages=find_packages(include=['custom_modules', 'custom_modules.*']),
    python_requires='>=3.9',
)
