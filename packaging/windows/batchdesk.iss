; Inno Setup recipe for batchdesk on Windows: installs the PyInstaller folder (dist\batchdesk)
; for all users, with Start-menu and optional desktop shortcuts, and a clean uninstall.
; UNTESTED here (Linux machines); built by packaging\windows\build.ps1, which passes AppVersion.
; User data (settings, the embedded database under %LOCALAPPDATA%\batchdesk) is not removed.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif

[Setup]
AppId={{6C2B4E0E-5B7A-4F51-9E0D-9B1D2C3A4B5C}
AppName=batchdesk
AppVersion={#AppVersion}
AppPublisher=batchdesk developers
DefaultDirName={autopf}\batchdesk
DefaultGroupName=batchdesk
DisableProgramGroupPage=yes
OutputDir=..\..\dist
OutputBaseFilename=batchdesk-{#AppVersion}-setup
SetupIconFile=..\..\build\batchdesk.ico
UninstallDisplayIcon={app}\batchdesk.exe
Compression=lzma2
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
PrivilegesRequired=admin
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; Flags: unchecked

[Files]
Source: "..\..\dist\batchdesk\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
; batchdeskw.exe opens the window without a console; batchdesk.exe is the command line.
Name: "{group}\batchdesk"; Filename: "{app}\batchdeskw.exe"
Name: "{autodesktop}\batchdesk"; Filename: "{app}\batchdeskw.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\batchdeskw.exe"; Description: "{cm:LaunchProgram,batchdesk}"; Flags: nowait postinstall skipifsilent
