"""metafile.yml (OpenMMLab model index) lists every config, and only
existing ones, with the paper numbers the README's model zoo shows."""
import yaml

from conftest import REPO_ROOT


def test_metafile_covers_every_config():
    with open(REPO_ROOT / 'metafile.yml') as f:
        index = yaml.safe_load(f)
    listed = {m['Config'] for m in index['Models']}
    shipped = {
        str(p.relative_to(REPO_ROOT))
        for p in (REPO_ROOT / 'configs').glob('*.py')
    }
    assert listed == shipped
    collections = {c['Name'] for c in index['Collections']}
    readme = (REPO_ROOT / 'README.md').read_text()
    for model in index['Models']:
        assert model['In Collection'] in collections
        for result in model['Results'] or []:
            for value in result['Metrics'].values():
                assert str(value) in readme, (model['Name'], value)
    with open(REPO_ROOT / 'model-index.yml') as f:
        assert yaml.safe_load(f) == {'Import': ['metafile.yml']}
