from sci2cl.cli import main

main()
