@echo off
rem pz2 fine-tuning menu for Windows (seed: run_finetuning.bat).
rem   9 = unified model, start to finish (simple, fast); 5-8 = classifier, specialists, unified model.
rem Uses the project virtual environment when there is one, otherwise the pz2 on PATH.
setlocal
cd /d "%~dp0"
if exist ".venv\Scripts\python.exe" (
    ".venv\Scripts\python.exe" -m pz2 --workspace finetuning ft %*
) else (
    pz2 --workspace finetuning ft %*
)
if errorlevel 1 pause
endlocal
