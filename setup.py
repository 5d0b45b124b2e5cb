from setuptools import find_packages, setup

setup(
    name='focal_mm',
    version='0.1.0',
    description='Focal Transformer backbones for OpenMMLab 2.x '
    '(mmdet, mmsegmentation, mmpretrain)',
    packages=find_packages(include=['focal_mm', 'focal_mm.*']),
    # The lower bounds are the oldest stack CI tests (make test-oldest,
    # requirements-oldest.txt); docs/compatibility.md has the whole range.
    python_requires='>=3.8',
    install_requires=['torch>=2.1', 'mmengine>=0.10.7', 'mmcv>=2.1.0'],
)
