# Build batchdesk for Windows: the PyInstaller folder, then the Inno Setup installer.
# UNTESTED: written for Windows 10/11 with Python 3.11+ and Inno Setup 6 (iscc on PATH); this
# project's machines are Linux. Run from the checkout:  powershell -File packaging\windows\build.ps1
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")

if (-not (Test-Path build\venv\Scripts\python.exe)) { py -3 -m venv build\venv }
build\venv\Scripts\python -m pip install --quiet -r packaging\requirements.txt
build\venv\Scripts\python -m pip install --quiet .
$version = build\venv\Scripts\python -c "import batchdesk; print(batchdesk.__version__)"

# The .exe icon, from the committed PNGs (Pillow writes every size into one .ico).
build\venv\Scripts\python -c "from PIL import Image; Image.open('resources/icons/batchdesk-256.png').save('build/batchdesk.ico', sizes=[(16,16),(32,32),(48,48),(64,64),(128,128),(256,256)])"

build\venv\Scripts\pyinstaller --noconfirm --distpath dist --workpath build\pyinstaller packaging\batchdesk.spec
dist\batchdesk\batchdesk.exe --version

iscc /DAppVersion=$version packaging\windows\batchdesk.iss
Write-Host "installer: dist\batchdesk-$version-setup.exe"
