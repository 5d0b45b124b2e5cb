from setuptools import find_packages, setup

setup(
    name='focal_mm',
    version='0.1.0',
    description='Focal Transformer backbones for OpenMMLab 2.x '
    '(mmdet, mmsegmentation, mmpretrain)',
    packages=find_packages(include=['focal_mm', 'focal_mm.*']),
    python_requires='>=3.8',
    install_requires=['torch', 'mmengine>=0.10', 'mmcv>=2.0'],
)
