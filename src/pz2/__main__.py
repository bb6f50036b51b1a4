from pz2.cli import main

raise SystemExit(main())
